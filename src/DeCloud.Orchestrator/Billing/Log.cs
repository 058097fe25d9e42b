using Microsoft.Extensions.Logging;

namespace DeCloud.Orchestrator.Billing;

/// <summary>The orchestrator's billing log messages (event ids 900-949).</summary>
internal static partial class Log
{
    [LoggerMessage(900, LogLevel.Information, "VM {VmId} priced at {HourlyUsdc} USDC/h on node {NodeId} (rate frozen).")]
    public static partial void VmPriced(ILogger logger, string vmId, decimal hourlyUsdc, string nodeId);

    [LoggerMessage(901, LogLevel.Debug, "Usage from node {NodeId}: {Accepted} new, {Duplicates} repeated, {Rejected} rejected, {Conflicts} conflicting. {Problems}")]
    public static partial void UsageIngested(ILogger logger, string nodeId, int accepted, int duplicates, int rejected, int conflicts, string problems);

    [LoggerMessage(902, LogLevel.Information, "Charged {Postings} hours, {Amount} USDC.")]
    public static partial void Accrued(ILogger logger, int postings, string amount);

    [LoggerMessage(903, LogLevel.Information, "Lease of VM {VmId} closed ({State}): last charge {Amount} USDC.")]
    public static partial void LeaseClosed(ILogger logger, string vmId, string state, string amount);

    [LoggerMessage(904, LogLevel.Warning, "User {User} is overdrawn ({Balance} USDC): stopping VM {VmId}.")]
    public static partial void StoppingOverdrawn(ILogger logger, string user, string balance, string vmId);

    [LoggerMessage(905, LogLevel.Warning, "Billing pass failed; retrying at the next interval.")]
    public static partial void PassFailed(ILogger logger, Exception exception);

    [LoggerMessage(906, LogLevel.Information, "Deposits reconciled: {Credited} credited, {Reversed} reversed, {Dropped} dropped.")]
    public static partial void DepositsReconciled(ILogger logger, int credited, int reversed, int dropped);

    [LoggerMessage(907, LogLevel.Warning, "Deposit reconciliation failed (transient: {Transient}): {Reason}")]
    public static partial void ReconcileFailed(ILogger logger, bool transient, string reason);

    [LoggerMessage(908, LogLevel.Information, "Deposit claim {TxHash} by {Wallet}: {Outcome}.")]
    public static partial void DepositClaimed(ILogger logger, string txHash, string wallet, string outcome);

    [LoggerMessage(909, LogLevel.Information, "Operator {Operator} set prices of node {NodeId}: {Rates}.")]
    public static partial void PricesSet(ILogger logger, string @operator, string nodeId, string rates);
}
