using System.Net;
using Microsoft.Extensions.Logging;

namespace DeCloud.Relay.Server;

internal static partial class Log
{
    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Relay listening for tunnels on {EndPoint} (TLS: {Tls}); public ports {First}-{Last}")]
    public static partial void Started(ILogger logger, IPEndPoint endPoint, bool tls, int first, int last);

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Node {NodeId} connected from {Remote}; TCP streams: {Transport}")]
    public static partial void NodeConnected(ILogger logger, string nodeId, IPEndPoint? remote, RelayStreamTransport transport);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Node {NodeId} disconnected: {Reason}")]
    public static partial void NodeDisconnected(ILogger logger, string nodeId, string reason);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Tunnel from {Remote} refused: {Reason}")]
    public static partial void TunnelRefused(ILogger logger, IPEndPoint? remote, string reason);

    [LoggerMessage(EventId = 204, Level = LogLevel.Information, Message = "Node {NodeId}: {Protocol} mapping '{Name}' on public port {Port} -> {Target}")]
    public static partial void Mapped(ILogger logger, string nodeId, RelayProtocol protocol, string name, int port, string target);

    [LoggerMessage(EventId = 205, Level = LogLevel.Information, Message = "Node {NodeId}: mapping '{Name}' removed, port {Port} released")]
    public static partial void Unmapped(ILogger logger, string nodeId, string name, int port);

    [LoggerMessage(EventId = 206, Level = LogLevel.Warning, Message = "Node {NodeId}: mapping '{Name}' refused: {Reason}")]
    public static partial void MapRefused(ILogger logger, string nodeId, string name, string reason);

    [LoggerMessage(EventId = 207, Level = LogLevel.Warning, Message = "Stored mapping {NodeId}/'{Name}' dropped at start: {Reason}")]
    public static partial void StoredMappingDropped(ILogger logger, string nodeId, string name, string reason);

    [LoggerMessage(EventId = 208, Level = LogLevel.Information, Message = "Reconciled {Count} stored mappings")]
    public static partial void Reconciled(ILogger logger, int count);

    [LoggerMessage(EventId = 209, Level = LogLevel.Warning, Message = "Public port {Port} ({Protocol}) could not be bound: {Reason}")]
    public static partial void BindFailed(ILogger logger, int port, RelayProtocol protocol, string reason);

    [LoggerMessage(EventId = 210, Level = LogLevel.Debug, Message = "Connection from {Client} to port {Port} refused: {Reason}")]
    public static partial void PublicConnectionRefused(ILogger logger, IPEndPoint? client, int port, string reason);

    [LoggerMessage(EventId = 211, Level = LogLevel.Debug, Message = "Stream from {Client} to port {Port} ended: {Result}")]
    public static partial void StreamEnded(ILogger logger, IPEndPoint? client, int port, string result);

    [LoggerMessage(EventId = 212, Level = LogLevel.Warning, Message = "Node {NodeId}: malformed {Type} frame; closing the tunnel")]
    public static partial void MalformedControl(ILogger logger, string nodeId, string type);

    [LoggerMessage(EventId = 213, Level = LogLevel.Information, Message = "Relay stopping: telling {Count} nodes to reconnect in {Delay}")]
    public static partial void GoingAway(ILogger logger, int count, TimeSpan delay);

    [LoggerMessage(EventId = 214, Level = LogLevel.Warning, Message = "Data connection from {Remote} for channel {ChannelId} refused: {Reason}")]
    public static partial void DataConnectionRefused(ILogger logger, IPEndPoint? remote, uint channelId, string reason);

    [LoggerMessage(EventId = 215, Level = LogLevel.Debug, Message = "Connection from {Remote} to the control endpoint closed at once: {Reason}")]
    public static partial void ConnectionShed(ILogger logger, IPEndPoint? remote, string reason);

    [LoggerMessage(EventId = 216, Level = LogLevel.Information, Message = "Mapping {NodeId}/'{Name}' not claimed for {Retention}: removed, port {Port} freed")]
    public static partial void MappingExpired(ILogger logger, string nodeId, string name, int port, TimeSpan retention);
}
