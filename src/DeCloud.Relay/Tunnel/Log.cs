using Microsoft.Extensions.Logging;

namespace DeCloud.Relay.Tunnel;

internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Tunnel {Tunnel}: closing after a protocol error {Code}: {Reason}")]
    public static partial void TunnelProtocolError(ILogger logger, string tunnel, string code, string reason);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Tunnel {Tunnel}: the peer reported error {Code}: {Reason}")]
    public static partial void PeerError(ILogger logger, string tunnel, string code, string reason);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Tunnel {Tunnel}: nothing received for {Silence}; closing (keepalive timeout)")]
    public static partial void KeepAliveTimeout(ILogger logger, string tunnel, TimeSpan silence);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "Tunnel {Tunnel}: resetting stream {StreamId} ({Code}): {Reason}")]
    public static partial void StreamReset(ILogger logger, string tunnel, uint streamId, string code, string reason);

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "Tunnel {Tunnel}: the peer reset stream {StreamId} ({Code}): {Reason}")]
    public static partial void StreamResetByPeer(ILogger logger, string tunnel, uint streamId, string code, string reason);

    [LoggerMessage(EventId = 105, Level = LogLevel.Error, Message = "Tunnel {Tunnel}: internal error while reading frames; closing the tunnel")]
    public static partial void ReadLoopFailed(ILogger logger, string tunnel, Exception exception);
}
