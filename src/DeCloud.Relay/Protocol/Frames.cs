using System.Buffers;
using System.Buffers.Binary;

namespace DeCloud.Relay.Protocol;

/// <summary>The kinds of frame on a tunnel. Unknown values close the tunnel with a logged reason.</summary>
internal enum FrameType : byte
{
    /// <summary>Server to node: protocol version and a fresh challenge nonce.</summary>
    Hello = 1,

    /// <summary>Node to server: node id and the proof computed over the challenge.</summary>
    Auth = 2,

    /// <summary>Server to node: accepted (with settings) or refused (with a reason).</summary>
    AuthResult = 3,

    /// <summary>Node to server: publish a mapping.</summary>
    MapRequest = 4,

    /// <summary>Server to node: the public port of a mapping, or why it was refused.</summary>
    MapResult = 5,

    /// <summary>Node to server: remove a mapping and release its ports.</summary>
    Unmap = 6,

    /// <summary>Server to node: a public client connected; open a stream toward the target.</summary>
    StreamOpen = 7,

    /// <summary>Node to server: the target accepted the connection.</summary>
    StreamAccept = 8,

    /// <summary>Stream bytes, bounded by the receiver's window.</summary>
    Data = 9,

    /// <summary>The receiver consumed bytes: the sender may send this many more.</summary>
    WindowUpdate = 10,

    /// <summary>The sender will send no more bytes on this stream (half-close).</summary>
    Fin = 11,

    /// <summary>The stream is aborted in both directions.</summary>
    Reset = 12,

    /// <summary>Keepalive probe carrying an opaque 8-byte value.</summary>
    Ping = 13,

    /// <summary>Keepalive answer echoing the ping's value.</summary>
    Pong = 14,

    /// <summary>Server to node: the server is going away, reconnect after the given delay.</summary>
    GoAway = 15,

    /// <summary>One UDP datagram of a flow (stream id = flow id).</summary>
    UdpDatagram = 16,

    /// <summary>A UDP flow expired or was closed.</summary>
    UdpFlowClose = 17,

    /// <summary>Node to server: connect back to my observed address on this port.</summary>
    ProbeRequest = 18,

    /// <summary>Server to node: result of a reachability probe.</summary>
    ProbeResult = 19,

    /// <summary>A connection-level error; the sender closes the tunnel after it.</summary>
    Error = 20,

    /// <summary>
    /// Server to node, on the tunnel: a public client connected to a mapping; open a dedicated data connection
    /// (stream id = data channel id) presenting the enclosed nonce.
    /// </summary>
    DataChannelOpen = 21,

    /// <summary>
    /// Node to server, the first frame of a dedicated data connection (instead of <see cref="Auth"/>): the channel id
    /// and its nonce. After it both directions carry raw stream bytes, unframed.
    /// </summary>
    DataChannel = 22,

    /// <summary>Node to server, on the tunnel: the data channel cannot be opened (the target refused, or the dial failed).</summary>
    DataChannelRefused = 23,
}

/// <summary>Codes carried by <see cref="FrameType.Error"/> and <see cref="FrameType.Reset"/> frames.</summary>
internal enum WireError : ushort
{
    None = 0,
    ProtocolError = 1,
    UnsupportedVersion = 2,
    AuthenticationFailed = 3,
    FlowControlViolation = 4,
    TooManyStreams = 5,
    ConnectFailed = 6,
    StreamAborted = 7,
    Replaced = 8,
    Shutdown = 9,

    /// <summary>Reset: the sender's end of the stream (the public client at the relay, the target at the node) failed.</summary>
    SocketFailed = 10,
}

/// <summary>Names of <see cref="WireError"/> codes for metric tags (snake_case, allocation-free).</summary>
internal static class WireErrors
{
    public static string Tag(WireError code) => code switch
    {
        WireError.None => "none",
        WireError.ProtocolError => "protocol_error",
        WireError.UnsupportedVersion => "unsupported_version",
        WireError.AuthenticationFailed => "authentication_failed",
        WireError.FlowControlViolation => "flow_control_violation",
        WireError.TooManyStreams => "too_many_streams",
        WireError.ConnectFailed => "connect_failed",
        WireError.StreamAborted => "stream_aborted",
        WireError.Replaced => "replaced",
        WireError.Shutdown => "shutdown",
        WireError.SocketFailed => "socket_failed",
        _ => "unknown",
    };
}

/// <summary>The fixed 12-byte frame header: version, type, flags, stream id, payload length (big-endian).</summary>
internal readonly record struct FrameHeader(byte Version, FrameType Type, ushort Flags, uint StreamId, int Length)
{
    /// <summary>Size of the encoded header in bytes.</summary>
    public const int Size = 12;

    /// <summary>The only protocol version this build speaks.</summary>
    public const byte CurrentVersion = 1;

    /// <summary>The largest payload any frame may carry (64 KiB); larger frames close the tunnel.</summary>
    public const int MaxPayload = 64 * 1024;

    public void Write(Span<byte> destination)
    {
        destination[0] = Version;
        destination[1] = (byte)Type;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], Flags);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], StreamId);
        BinaryPrimitives.WriteInt32BigEndian(destination[8..], Length);
    }
}

/// <summary>Outcome of decoding one frame; anything but <see cref="Ok"/> and <see cref="NeedMoreData"/> closes the tunnel.</summary>
internal enum FrameDecodeStatus
{
    Ok,
    NeedMoreData,
    UnsupportedVersion,
    UnknownType,
    Oversized,
}

/// <summary>Decodes frames from a byte sequence without allocating.</summary>
internal static class FrameDecoder
{
    /// <summary>
    /// Tries to take one whole frame from the front of <paramref name="buffer"/>. On <see cref="FrameDecodeStatus.Ok"/>
    /// the buffer is sliced past the frame and <paramref name="payload"/> refers into the original sequence.
    /// </summary>
    public static FrameDecodeStatus TryDecode(ref ReadOnlySequence<byte> buffer, out FrameHeader header, out ReadOnlySequence<byte> payload)
    {
        header = default;
        payload = default;
        if (buffer.Length < FrameHeader.Size)
        {
            // The version byte is checked as soon as it arrives: a peer speaking another version is refused at once.
            if (buffer.Length > 0 && buffer.FirstSpan[0] != FrameHeader.CurrentVersion)
            {
                return FrameDecodeStatus.UnsupportedVersion;
            }

            return FrameDecodeStatus.NeedMoreData;
        }

        Span<byte> raw = stackalloc byte[FrameHeader.Size];
        buffer.Slice(0, FrameHeader.Size).CopyTo(raw);
        var version = raw[0];
        var type = (FrameType)raw[1];
        var flags = BinaryPrimitives.ReadUInt16BigEndian(raw[2..]);
        var streamId = BinaryPrimitives.ReadUInt32BigEndian(raw[4..]);
        var length = BinaryPrimitives.ReadInt32BigEndian(raw[8..]);
        header = new FrameHeader(version, type, flags, streamId, length);
        if (version != FrameHeader.CurrentVersion)
        {
            return FrameDecodeStatus.UnsupportedVersion;
        }

        if (type is < FrameType.Hello or > FrameType.DataChannelRefused)
        {
            return FrameDecodeStatus.UnknownType;
        }

        if (length < 0 || length > FrameHeader.MaxPayload)
        {
            return FrameDecodeStatus.Oversized;
        }

        if (buffer.Length < FrameHeader.Size + (long)length)
        {
            return FrameDecodeStatus.NeedMoreData;
        }

        payload = buffer.Slice(FrameHeader.Size, length);
        buffer = buffer.Slice(FrameHeader.Size + (long)length);
        return FrameDecodeStatus.Ok;
    }

    /// <summary>Says what is wrong with a frame that did not decode.</summary>
    public static string Describe(FrameDecodeStatus status, FrameHeader header) => status switch
    {
        FrameDecodeStatus.UnsupportedVersion => $"unsupported protocol version {header.Version} (this relay speaks version {FrameHeader.CurrentVersion})",
        FrameDecodeStatus.UnknownType => $"unknown frame type {(byte)header.Type}",
        FrameDecodeStatus.Oversized => $"frame of {header.Length} bytes exceeds the limit of {FrameHeader.MaxPayload}",
        _ => status.ToString(),
    };
}
