using DeCloud.Billing.Ledger;

namespace DeCloud.Billing;

/// <summary>
/// The base of every exception DeCloud.Billing throws for a refused operation. Whenever one is thrown,
/// nothing was stored: the ledger and every billing table are as they were before the call.
/// </summary>
public abstract class BillingException : Exception
{
    private protected BillingException(string message, Exception? inner = null) : base(message, inner)
    {
    }

    /// <summary>True when the same call may succeed later unchanged (an RPC timeout, a busy node).</summary>
    public virtual bool IsTransient => false;
}

/// <summary>Input was malformed or out of range; <see cref="Field"/> names what was wrong.</summary>
public sealed class BillingValidationException : BillingException
{
    internal BillingValidationException(string field, string message) : base($"{field}: {message}") => Field = field;

    /// <summary>The field or argument that was rejected, e.g. <c>rates.cpuPerPointHour</c>.</summary>
    public string Field { get; }
}

/// <summary>An account holds less than an operation needs (an escrow hold, a payout).</summary>
public sealed class InsufficientFundsException : BillingException
{
    internal InsufficientFundsException(LedgerAccount account, long balanceMicroUsdc, long neededMicroUsdc)
        : base($"{account} holds {MicroUsdc.Format(balanceMicroUsdc)} USDC but {MicroUsdc.Format(neededMicroUsdc)} USDC is needed.")
    {
        Account = account;
        BalanceMicroUsdc = balanceMicroUsdc;
        NeededMicroUsdc = neededMicroUsdc;
    }

    /// <summary>The account that is short.</summary>
    public LedgerAccount Account { get; }

    /// <summary>Its balance in micro-USDC.</summary>
    public long BalanceMicroUsdc { get; }

    /// <summary>The amount the operation needed, in micro-USDC.</summary>
    public long NeededMicroUsdc { get; }
}

/// <summary>
/// An idempotency key was reused for a different operation (other entries, another VM): the earlier
/// posting stands and the new one was refused.
/// </summary>
public sealed class IdempotencyConflictException : BillingException
{
    internal IdempotencyConflictException(string key, string what)
        : base($"Idempotency key '{key}' was already used for a different {what}; pick a new key or repeat the original request exactly.") => Key = key;

    /// <summary>The reused key.</summary>
    public string Key { get; }
}

/// <summary>An operation does not fit the current state (releasing a refunded escrow, metering an unknown VM).</summary>
public sealed class BillingStateException : BillingException
{
    internal BillingStateException(string message) : base(message)
    {
    }
}

/// <summary>
/// The chain RPC failed, timed out or disagreed with the configuration (another chain id, no contract
/// at the configured address). Nothing was credited or paid.
/// </summary>
public sealed class ChainException : BillingException
{
    internal ChainException(string message, bool isTransient, Exception? inner = null) : base(message, inner) => Transient = isTransient;

    private bool Transient { get; }

    /// <inheritdoc />
    public override bool IsTransient => Transient;
}

/// <summary>Validation helpers that throw <see cref="BillingValidationException"/>.</summary>
internal static class Check
{
    public static BillingValidationException Fail(string field, string message) => new(field, message);

    public static string Show(string? s) => s is null ? "null" : s.Length <= 80 ? s : s[..80] + "...";
}
