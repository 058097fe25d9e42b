using Microsoft.Extensions.Logging;

namespace DeCloud.Relay.Client;

internal static partial class Log
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Connected to relay {Server} as node {NodeId}")]
    public static partial void Connected(ILogger logger, string server, string nodeId);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Tunnel to relay {Server} lost: {Reason}; reconnecting in {Delay}")]
    public static partial void Disconnected(ILogger logger, string server, string reason, TimeSpan delay);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "Connecting to relay {Server} failed: {Reason}; retrying in {Delay}")]
    public static partial void ConnectFailed(ILogger logger, string server, string reason, TimeSpan delay);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "Mapping '{Name}' published: {Mapping}")]
    public static partial void Published(ILogger logger, string name, string mapping);

    [LoggerMessage(EventId = 304, Level = LogLevel.Warning, Message = "Forwarded stream to {Target} failed to connect: {Reason}")]
    public static partial void TargetConnectFailed(ILogger logger, string target, string reason);

    [LoggerMessage(EventId = 305, Level = LogLevel.Information, Message = "Relay is going away ({Reason}); reconnecting in {Delay}")]
    public static partial void GoingAway(ILogger logger, string reason, TimeSpan delay);

    [LoggerMessage(EventId = 306, Level = LogLevel.Warning, Message = "Relay sent a malformed or unexpected {Type} frame; closing the tunnel")]
    public static partial void MalformedControl(ILogger logger, string type);

    [LoggerMessage(EventId = 307, Level = LogLevel.Debug, Message = "Forwarded stream to {Target} ended: {Result}")]
    public static partial void StreamEnded(ILogger logger, string target, string result);

    [LoggerMessage(EventId = 308, Level = LogLevel.Warning, Message = "Dedicated data connection for a stream to {Target} failed: {Reason}")]
    public static partial void DataConnectionFailed(ILogger logger, string target, string reason);
}
