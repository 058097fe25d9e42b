using Microsoft.Extensions.Logging;

namespace DeCloud.Orchestrator;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Node {NodeId} registered (operator {Operator}, {ComputePoints} points, behind NAT: {BehindNat}).")]
    public static partial void NodeRegistered(ILogger logger, string nodeId, string @operator, int computePoints, bool behindNat);

    [LoggerMessage(2, LogLevel.Warning, "Registration rejected: {Reason}")]
    public static partial void RegistrationRejected(ILogger logger, string reason);

    [LoggerMessage(3, LogLevel.Information, "Node {NodeId} disconnected.")]
    public static partial void NodeDisconnected(ILogger logger, string nodeId);

    [LoggerMessage(4, LogLevel.Warning, "Node {NodeId} marked offline: no heartbeat for {OfflineAfter}.")]
    public static partial void NodeOffline(ILogger logger, string nodeId, TimeSpan offlineAfter);

    [LoggerMessage(5, LogLevel.Warning, "Node {NodeId} sent a bad message: {Reason}")]
    public static partial void BadAgentMessage(ILogger logger, string nodeId, string reason);

    [LoggerMessage(6, LogLevel.Information, "Command {CommandId} ({Kind}) for node {NodeId} acknowledged: {Status} {Error}")]
    public static partial void CommandAcked(ILogger logger, string commandId, string kind, string nodeId, string status, string error);

    [LoggerMessage(7, LogLevel.Information, "VM {VmId} placed on node {NodeId}.")]
    public static partial void VmPlaced(ILogger logger, string vmId, string nodeId);

    [LoggerMessage(8, LogLevel.Information, "Relay {RelayNodeId} assigned to NAT'd node {NodeId}.")]
    public static partial void RelayAssigned(ILogger logger, string relayNodeId, string nodeId);

    [LoggerMessage(9, LogLevel.Warning, "NAT'd node {NodeId} has no relay: no online relay-capable node.")]
    public static partial void NoRelay(ILogger logger, string nodeId);

    [LoggerMessage(10, LogLevel.Information, "DeCloud orchestrator listening on {Address}")]
    public static partial void Listening(ILogger logger, string address);

    [LoggerMessage(11, LogLevel.Warning, "VM {VmId} on node {NodeId} is not counted by placement: {Reason}")]
    public static partial void AllocationNotRestored(ILogger logger, string vmId, string nodeId, string reason);

    [LoggerMessage(12, LogLevel.Warning, "Node {NodeId} cannot receive VMs: {Reason}")]
    public static partial void NodeNotPlaceable(ILogger logger, string nodeId, string reason);

    [LoggerMessage(13, LogLevel.Information, "VM request refused: {Reason}")]
    public static partial void PlacementRefused(ILogger logger, string reason);
}
