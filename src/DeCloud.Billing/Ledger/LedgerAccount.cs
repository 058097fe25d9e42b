using DeCloud.Core.Model;

namespace DeCloud.Billing.Ledger;

/// <summary>What an account is for; its owner depends on the kind.</summary>
public enum LedgerAccountKind
{
    /// <summary>A user's prepaid balance (owner: the user's wallet).</summary>
    UserBalance = 0,

    /// <summary>What a node operator has earned (owner: the operator's wallet).</summary>
    NodeOperatorEarnings = 1,

    /// <summary>What a relay operator has earned (owner: the operator's wallet).</summary>
    RelayOperatorEarnings = 2,

    /// <summary>What a template author has earned (owner: the author's wallet).</summary>
    TemplateAuthor = 3,

    /// <summary>The platform's revenue (no owner).</summary>
    Platform = 4,

    /// <summary>Money held for one deployment until it succeeds or fails (owner: the VM id).</summary>
    Escrow = 5,

    /// <summary>The outside world that deposits come from (no owner); its balance is minus all deposits.</summary>
    ExternalDeposits = 6,

    /// <summary>The outside world that payouts go to (no owner); its balance is all payouts.</summary>
    ExternalPayouts = 7,
}

/// <summary>
/// One account of the ledger: a kind and, for per-party kinds, an owner. Written as
/// <c>user:0xabc…</c>, <c>node:0x…</c>, <c>relay:0x…</c>, <c>author:0x…</c>, <c>escrow:&lt;vm id&gt;</c>,
/// <c>platform</c>, <c>external:deposits</c>, <c>external:payouts</c>.
/// </summary>
public readonly record struct LedgerAccount
{
    private readonly string? _text;

    private LedgerAccount(LedgerAccountKind kind, string text)
    {
        Kind = kind;
        _text = text;
    }

    /// <summary>The kind of account.</summary>
    public LedgerAccountKind Kind { get; }

    /// <summary>The platform's revenue account.</summary>
    public static LedgerAccount Platform { get; } = new(LedgerAccountKind.Platform, "platform");

    /// <summary>The counter-account of deposits.</summary>
    public static LedgerAccount ExternalDeposits { get; } = new(LedgerAccountKind.ExternalDeposits, "external:deposits");

    /// <summary>The counter-account of payouts.</summary>
    public static LedgerAccount ExternalPayouts { get; } = new(LedgerAccountKind.ExternalPayouts, "external:payouts");

    /// <summary>A user's balance.</summary>
    public static LedgerAccount User(WalletAddress wallet) => Owned(LedgerAccountKind.UserBalance, "user:", wallet);

    /// <summary>A node operator's earnings.</summary>
    public static LedgerAccount NodeOperator(WalletAddress wallet) => Owned(LedgerAccountKind.NodeOperatorEarnings, "node:", wallet);

    /// <summary>A relay operator's earnings.</summary>
    public static LedgerAccount RelayOperator(WalletAddress wallet) => Owned(LedgerAccountKind.RelayOperatorEarnings, "relay:", wallet);

    /// <summary>A template author's earnings.</summary>
    public static LedgerAccount TemplateAuthor(WalletAddress wallet) => Owned(LedgerAccountKind.TemplateAuthor, "author:", wallet);

    /// <summary>The escrow of one deployment.</summary>
    public static LedgerAccount Escrow(VmId vm) =>
        vm.Value == Guid.Empty ? throw Check.Fail("vmId", "an escrow needs a VM id.") : new(LedgerAccountKind.Escrow, "escrow:" + vm);

    /// <summary>
    /// Parses the written form; throws <see cref="BillingValidationException"/> for an unknown kind or
    /// a malformed owner.
    /// </summary>
    public static LedgerAccount Parse(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.Length > 128)
        {
            throw Check.Fail("account", $"'{Check.Show(text)}' is not an account; expected e.g. user:0x…, node:0x…, platform.");
        }

        switch (text)
        {
            case "platform":
                return Platform;
            case "external:deposits":
                return ExternalDeposits;
            case "external:payouts":
                return ExternalPayouts;
        }

        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var prefix = colon < 0 ? text : text[..colon];
        var owner = colon < 0 ? string.Empty : text[(colon + 1)..];
        Func<WalletAddress, LedgerAccount>? byWallet = prefix switch
        {
            "user" => User,
            "node" => NodeOperator,
            "relay" => RelayOperator,
            "author" => TemplateAuthor,
            _ => null,
        };
        if (byWallet is not null)
        {
            return WalletAddress.TryParse(owner, out var wallet, out var error)
                ? byWallet(wallet)
                : throw Check.Fail("account", $"'{Check.Show(text)}': {error}");
        }

        if (prefix == "escrow")
        {
            return VmId.TryParse(owner, null, out var vm)
                ? Escrow(vm)
                : throw Check.Fail("account", $"'{Check.Show(text)}': '{Check.Show(owner)}' is not a VM id.");
        }

        throw Check.Fail("account", $"'{Check.Show(text)}' has an unknown account kind '{Check.Show(prefix)}'; expected user, node, relay, author, escrow, platform or external.");
    }

    /// <inheritdoc />
    public override string ToString() => _text ?? throw new InvalidOperationException("A default LedgerAccount has no value.");

    private static LedgerAccount Owned(LedgerAccountKind kind, string prefix, WalletAddress wallet) =>
        wallet.IsEmpty ? throw Check.Fail("wallet", $"a {kind} account needs a wallet address.") : new(kind, prefix + wallet.ToLowerHex());
}
