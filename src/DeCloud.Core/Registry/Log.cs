using DeCloud.Core.Model;
using Microsoft.Extensions.Logging;

namespace DeCloud.Core.Registry;

internal static partial class Log
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Node {NodeId} registered in {Region} with {ComputePoints} compute points")]
    public static partial void Registered(ILogger logger, NodeId nodeId, string region, int computePoints);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Node {NodeId} re-registered (agent {AgentVersion})")]
    public static partial void Updated(ILogger logger, NodeId nodeId, string agentVersion);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Node {NodeId} is offline: no heartbeat since {LastSeenAt}")]
    public static partial void Offline(ILogger logger, NodeId nodeId, DateTimeOffset lastSeenAt);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "Node {NodeId} is back online")]
    public static partial void Online(ILogger logger, NodeId nodeId);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Information, Message = "Node {NodeId} removed")]
    public static partial void Removed(ILogger logger, NodeId nodeId);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Error, Message = "A registry observer failed on {Kind} of node {NodeId}")]
    public static partial void ObserverFailed(ILogger logger, Exception exception, NodeChangeKind kind, NodeId nodeId);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Error, Message = "Health check failed; next one in {Interval}")]
    public static partial void CheckFailed(ILogger logger, Exception exception, TimeSpan interval);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Information, Message = "Loaded {Count} nodes from the store")]
    public static partial void Loaded(ILogger logger, int count);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Debug, Message = "Pruned {Rows} failed-heartbeat rows before day {Day}")]
    public static partial void Pruned(ILogger logger, int rows, long day);
}
