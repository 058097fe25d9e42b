using DeCloud.Billing.Ledger;
using DeCloud.Core.Model;
using Microsoft.Data.Sqlite;

namespace DeCloud.Billing.Escrow;

/// <summary>Where a deployment's template fee is.</summary>
public enum EscrowState
{
    /// <summary>Taken from the user, held in the deployment's escrow account.</summary>
    Held = 0,

    /// <summary>Paid out: the author got floor(fee x 85 / 100), the platform the rest.</summary>
    Released = 1,

    /// <summary>Returned to the user because the deployment failed.</summary>
    Refunded = 2,
}

/// <summary>One deployment's escrow.</summary>
/// <param name="Vm">The deployed VM.</param>
/// <param name="User">Who paid.</param>
/// <param name="Author">The template's author.</param>
/// <param name="FeeMicroUsdc">The fee.</param>
/// <param name="State">Where the fee is.</param>
public sealed record TemplateEscrowRecord(VmId Vm, WalletAddress User, WalletAddress Author, long FeeMicroUsdc, EscrowState State);

/// <summary>
/// Paid templates: the per-deploy fee moves from the user into the deployment's escrow account; when
/// the VM reaches Running it is split, author = floor(fee x 85 / 100) and platform = fee - author (the
/// parts always sum to the fee); a failed deployment refunds it. Every step is idempotent and posts in
/// the same transaction as the escrow's state change.
/// </summary>
public sealed class TemplateEscrow
{
    /// <summary>The author's share in percent.</summary>
    public const int AuthorPercent = 85;

    internal const string Component = "escrow";

    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE template_escrows (
            vm_id TEXT PRIMARY KEY, user_wallet TEXT NOT NULL, author_wallet TEXT NOT NULL,
            fee INTEGER NOT NULL CHECK (fee > 0), state INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL) WITHOUT ROWID;
        """,
    ];

    private readonly BillingLedger _ledger;

    /// <summary>Opens the escrow on the ledger's database.</summary>
    public TemplateEscrow(BillingLedger ledger)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        _ledger = ledger;
        ledger.Database.Migrate(Component, Migrations);
    }

    /// <summary>Splits a fee: author = floor(fee x 85 / 100), platform = fee - author.</summary>
    public static (long Author, long Platform) Split(long feeMicroUsdc)
    {
        if (feeMicroUsdc <= 0 || feeMicroUsdc > MicroUsdc.MaxAmount)
        {
            throw Check.Fail("fee", $"{feeMicroUsdc} micro-USDC must be positive and at most {MicroUsdc.MaxAmount}.");
        }

        var author = feeMicroUsdc * AuthorPercent / 100; // no overflow: MaxAmount * 85 < long.MaxValue
        return (author, feeMicroUsdc - author);
    }

    /// <summary>
    /// Takes the fee from the user into escrow. Holding the same deployment again with the same terms is
    /// a no-op; with other terms it is refused. Throws <see cref="InsufficientFundsException"/> when the
    /// user's balance is short (nothing is held).
    /// </summary>
    public TemplateEscrowRecord Hold(VmId vm, WalletAddress user, WalletAddress author, long feeMicroUsdc)
    {
        if (vm.Value == Guid.Empty)
        {
            throw Check.Fail("vm", "must be a VM id.");
        }

        if (user.IsEmpty || author.IsEmpty)
        {
            throw Check.Fail(user.IsEmpty ? "user" : "author", "must be a wallet address.");
        }

        _ = Split(feeMicroUsdc);
        return _ledger.InTransaction(w =>
        {
            if (Read(w, vm) is { } existing)
            {
                return existing.User == user && existing.Author == author && existing.FeeMicroUsdc == feeMicroUsdc
                    ? existing
                    : throw new IdempotencyConflictException($"escrow:hold:{vm}", "template escrow");
            }

            var userAccount = LedgerAccount.User(user);
            var balance = w.Balance(userAccount);
            if (balance < feeMicroUsdc)
            {
                throw new InsufficientFundsException(userAccount, balance, feeMicroUsdc);
            }

            w.Post(LedgerPosting.Transfer($"escrow:hold:{vm}", userAccount, LedgerAccount.Escrow(vm), feeMicroUsdc, $"template fee for VM {vm}"));
            using var insert = w.Prepare(
                "INSERT INTO template_escrows (vm_id, user_wallet, author_wallet, fee, state, updated_at_ms) VALUES ($vm, $u, $a, $f, 0, $t);",
                "$vm", "$u", "$a", "$f", "$t");
            insert.Parameters[0].Value = vm.ToString();
            insert.Parameters[1].Value = user.ToLowerHex();
            insert.Parameters[2].Value = author.ToLowerHex();
            insert.Parameters[3].Value = feeMicroUsdc;
            insert.Parameters[4].Value = w.NowMs;
            insert.ExecuteNonQuery();
            return new TemplateEscrowRecord(vm, user, author, feeMicroUsdc, EscrowState.Held);
        });
    }

    /// <summary>The VM reached Running: pays the author and the platform. Releasing again is a no-op; a refunded escrow is refused.</summary>
    public TemplateEscrowRecord Release(VmId vm) => Settle(vm, EscrowState.Released);

    /// <summary>The deployment failed: returns the fee to the user. Refunding again is a no-op; a released escrow is refused.</summary>
    public TemplateEscrowRecord Refund(VmId vm) => Settle(vm, EscrowState.Refunded);

    /// <summary>The escrow of <paramref name="vm"/>, or null.</summary>
    public TemplateEscrowRecord? Get(VmId vm) => _ledger.InTransaction(w => Read(w, vm));

    private static TemplateEscrowRecord? Read(LedgerWriter w, VmId vm)
    {
        using var q = w.Prepare("SELECT user_wallet, author_wallet, fee, state FROM template_escrows WHERE vm_id = $vm;", "$vm");
        q.Parameters[0].Value = vm.ToString();
        using SqliteDataReader r = q.ExecuteReader();
        return r.Read()
            ? new TemplateEscrowRecord(vm, WalletAddress.Parse(r.GetString(0)), WalletAddress.Parse(r.GetString(1)), r.GetInt64(2), (EscrowState)r.GetInt32(3))
            : null;
    }

    private TemplateEscrowRecord Settle(VmId vm, EscrowState target) => _ledger.InTransaction(w =>
    {
        var e = Read(w, vm) ?? throw new BillingStateException($"VM {vm} has no template escrow.");
        if (e.State == target)
        {
            return e;
        }

        if (e.State != EscrowState.Held)
        {
            throw new BillingStateException($"The escrow of VM {vm} was already {e.State.ToString().ToLowerInvariant()}; it cannot be {target.ToString().ToLowerInvariant()}.");
        }

        var escrow = LedgerAccount.Escrow(vm);
        if (target == EscrowState.Released)
        {
            var (author, platform) = Split(e.FeeMicroUsdc);
            var legs = new List<LedgerEntry> { new(escrow, -e.FeeMicroUsdc), new(LedgerAccount.TemplateAuthor(e.Author), author) };
            if (platform > 0)
            {
                legs.Add(new(LedgerAccount.Platform, platform));
            }

            w.Post(LedgerPosting.Create($"escrow:release:{vm}", legs, $"template fee for VM {vm}: author {AuthorPercent}%"));
        }
        else
        {
            w.Post(LedgerPosting.Transfer($"escrow:refund:{vm}", escrow, LedgerAccount.User(e.User), e.FeeMicroUsdc, $"refund of the template fee for failed VM {vm}"));
        }

        using var update = w.Prepare("UPDATE template_escrows SET state = $s, updated_at_ms = $t WHERE vm_id = $vm;", "$s", "$t", "$vm");
        update.Parameters[0].Value = (int)target;
        update.Parameters[1].Value = w.NowMs;
        update.Parameters[2].Value = vm.ToString();
        update.ExecuteNonQuery();
        return e with { State = target };
    });
}
