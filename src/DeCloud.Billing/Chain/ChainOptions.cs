using DeCloud.Core.Model;

namespace DeCloud.Billing.Chain;

/// <summary>Where USDC deposits arrive and payouts leave: the chain, the token, the platform's addresses.</summary>
public sealed class ChainOptions
{
    /// <summary>The JSON-RPC endpoint (e.g. a Polygon node).</summary>
    public Uri? RpcUrl { get; set; }

    /// <summary>The chain id the RPC must report (Polygon PoS is 137); any other is refused.</summary>
    public long ChainId { get; set; } = 137;

    /// <summary>The USDC (6-decimal ERC-20) contract address; Transfer logs of any other contract are ignored.</summary>
    public string? UsdcContract { get; set; }

    /// <summary>The platform's deposit address: Transfer logs to any other address are ignored.</summary>
    public string? DepositAddress { get; set; }

    /// <summary>Blocks on top of a deposit's block before it is credited, counting its own (default 64, 1..10,000).</summary>
    public int Confirmations { get; set; } = 64;

    /// <summary>How many blocks back <see cref="UsdcDeposits.ReconcileAsync"/> re-checks credited deposits (default 256).</summary>
    public int ReorgDepth { get; set; } = 256;

    /// <summary>Bound of one RPC call (default 30 s).</summary>
    public TimeSpan RpcTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The hex private key of the platform account that sends payouts; null disables payouts.</summary>
    public string? PayoutPrivateKey { get; set; }

    /// <summary>Gas limit of a payout transfer (default 100,000).</summary>
    public long PayoutGasLimit { get; set; } = 100_000;

    internal WalletAddress Contract => WalletAddress.Parse(UsdcContract, "Chain.UsdcContract");

    internal WalletAddress Deposit => WalletAddress.Parse(DepositAddress, "Chain.DepositAddress");

    /// <summary>Throws <see cref="BillingValidationException"/> naming the first bad property.</summary>
    public void Validate()
    {
        if (RpcUrl is null || !RpcUrl.IsAbsoluteUri || (RpcUrl.Scheme != Uri.UriSchemeHttp && RpcUrl.Scheme != Uri.UriSchemeHttps))
        {
            throw Check.Fail("Chain.RpcUrl", $"'{RpcUrl}' must be an absolute http(s) URL.");
        }

        if (ChainId <= 0)
        {
            throw Check.Fail("Chain.ChainId", $"{ChainId} must be positive.");
        }

        if (!WalletAddress.TryParse(UsdcContract, out _, out var e1))
        {
            throw Check.Fail("Chain.UsdcContract", e1);
        }

        if (!WalletAddress.TryParse(DepositAddress, out _, out var e2))
        {
            throw Check.Fail("Chain.DepositAddress", e2);
        }

        if (Confirmations is < 1 or > 10_000)
        {
            throw Check.Fail("Chain.Confirmations", $"{Confirmations} is out of range 1..10,000.");
        }

        if (ReorgDepth < Confirmations || ReorgDepth > 1_000_000)
        {
            throw Check.Fail("Chain.ReorgDepth", $"{ReorgDepth} must be at least Confirmations ({Confirmations}) and at most 1,000,000.");
        }

        if (RpcTimeout <= TimeSpan.Zero || RpcTimeout > TimeSpan.FromMinutes(10))
        {
            throw Check.Fail("Chain.RpcTimeout", $"{RpcTimeout} must be positive and at most 10 minutes.");
        }

        if (PayoutPrivateKey is not null && !ChainText.IsHex(PayoutPrivateKey, 64))
        {
            throw Check.Fail("Chain.PayoutPrivateKey", "must be 64 hex digits (optionally with 0x).");
        }

        if (PayoutGasLimit is < 21_000 or > 10_000_000)
        {
            throw Check.Fail("Chain.PayoutGasLimit", $"{PayoutGasLimit} is out of range 21,000..10,000,000.");
        }
    }
}

/// <summary>Hex checks for hashes and keys.</summary>
internal static class ChainText
{
    public static bool IsHex(string? s, int digits)
    {
        if (s is null)
        {
            return false;
        }

        var span = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? s.AsSpan(2) : s.AsSpan();
        if (span.Length != digits)
        {
            return false;
        }

        foreach (var c in span)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Normalizes a transaction hash to <c>0x</c> + 64 lower-case hex digits, or throws.</summary>
    public static string TxHash(string? s) => s is not null && s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && IsHex(s, 64)
        ? "0x" + s[2..].ToLowerInvariant()
        : throw Check.Fail("txHash", $"'{Check.Show(s)}' is not a transaction hash; expected 0x followed by 64 hex digits.");
}
