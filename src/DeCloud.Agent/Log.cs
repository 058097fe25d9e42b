using Microsoft.Extensions.Logging;

namespace DeCloud.Agent;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Registered with {Url} as node {NodeId} ({ComputePoints} points, hypervisor {Hypervisor}).")]
    public static partial void Registered(ILogger logger, string url, string nodeId, int computePoints, string hypervisor);

    [LoggerMessage(2, LogLevel.Warning, "Control stream to {Url} ended: {Reason}. Reconnecting in {Delay}.")]
    public static partial void StreamEnded(ILogger logger, string url, string reason, TimeSpan delay);

    [LoggerMessage(3, LogLevel.Information, "Command {CommandId} ({Kind}) executed: {Status} {Error}")]
    public static partial void CommandExecuted(ILogger logger, string commandId, string kind, string status, string error);

    [LoggerMessage(4, LogLevel.Information, "Command {CommandId} ({Kind}) was already executed; re-sending its stored ack.")]
    public static partial void CommandReplayed(ILogger logger, string commandId, string kind);

    [LoggerMessage(5, LogLevel.Information, "Compute points measured with {Method}: score {Score:F0} events/s on {Threads} threads = {Points} points.")]
    public static partial void ComputeMeasured(ILogger logger, string method, double score, int threads, int points);

    [LoggerMessage(6, LogLevel.Information, "Reconciled {Vms} VMs from local state ({Recreated} recreated, {Restarted} restarted) and {Ports} ports.")]
    public static partial void Reconciled(ILogger logger, int vms, int recreated, int restarted, int ports);

    [LoggerMessage(7, LogLevel.Warning, "Could not restore VM {VmId} at start: {Error}")]
    public static partial void ReconcileFailed(ILogger logger, string vmId, string error);

    [LoggerMessage(8, LogLevel.Warning, "Orchestrator reported a protocol error {Code}: {Message} (fatal: {Fatal})")]
    public static partial void ProtocolError(ILogger logger, string code, string message, bool fatal);

    [LoggerMessage(9, LogLevel.Information, "Relay {RelayNodeId} at {Endpoint} assigned to this node.")]
    public static partial void RelayAssigned(ILogger logger, string relayNodeId, string endpoint);
}
