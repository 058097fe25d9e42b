using Microsoft.Extensions.Logging;

namespace DeCloud.Billing;

/// <summary>Source-generated log messages of DeCloud.Billing.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 8001, Level = LogLevel.Warning, Message = "User {User} is overdrawn: balance {Balance} USDC")]
    public static partial void Overdrawn(ILogger logger, string user, string balance);

    [LoggerMessage(EventId = 8010, Level = LogLevel.Information, Message = "Credited deposit {TxHash}#{LogIndex} of {Amount} USDC from {From}")]
    public static partial void DepositCredited(ILogger logger, string txHash, long logIndex, string amount, string from);

    [LoggerMessage(EventId = 8011, Level = LogLevel.Warning, Message = "Deposit {TxHash}#{LogIndex} was reorganized away; {Action}")]
    public static partial void DepositReorganized(ILogger logger, string txHash, long logIndex, string action);

    [LoggerMessage(EventId = 8012, Level = LogLevel.Warning, Message = "Deposit claim {TxHash} refused: {Outcome}")]
    public static partial void DepositRefused(ILogger logger, string txHash, string outcome);

    [LoggerMessage(EventId = 8020, Level = LogLevel.Information, Message = "Payout {Key}: sent {Amount} USDC to {To} in {TxHash}")]
    public static partial void PayoutSent(ILogger logger, string key, string amount, string to, string txHash);

    [LoggerMessage(EventId = 8021, Level = LogLevel.Warning, Message = "Payout {Key} transaction {TxHash} failed on chain; earnings restored")]
    public static partial void PayoutFailed(ILogger logger, string key, string txHash);

    [LoggerMessage(EventId = 8030, Level = LogLevel.Information, Message = "SLA credit for VM {Vm}: uptime {Uptime} under {Threshold}, credited {Amount} USDC")]
    public static partial void SlaCredit(ILogger logger, string vm, decimal uptime, decimal threshold, string amount);
}
