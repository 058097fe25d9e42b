using System.Buffers;
using System.Net;

namespace DeCloud.Relay.Protocol;

/// <summary>Server hello: the version it speaks and a fresh challenge.</summary>
internal sealed record HelloMessage(byte Version, byte[] Challenge)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().U8(Version).Bytes(Challenge).WrittenMemory;

    public static HelloMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryU8(out var version) && r.TryBytes(out var challenge) && challenge.Length >= 16 && r.IsEmpty
            ? new HelloMessage(version, challenge.ToArray())
            : null;
    }
}

/// <summary>What a node can do, announced in its <see cref="AuthMessage"/>.</summary>
[Flags]
internal enum NodeCapabilities : byte
{
    None = 0,

    /// <summary>The node opens a dedicated data connection per TCP stream when asked.</summary>
    DedicatedConnections = 1,
}

/// <summary>Node authentication: who it is, its proof over the challenge and its capabilities.</summary>
internal sealed record AuthMessage(string NodeId, byte[] Proof, NodeCapabilities Capabilities = NodeCapabilities.None)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().String(NodeId).Bytes(Proof).U8((byte)Capabilities).WrittenMemory;

    public static AuthMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryString(out var nodeId) && r.TryBytes(out var proof) && r.TryU8(out var capabilities) && r.IsEmpty
            ? new AuthMessage(nodeId, proof.ToArray(), (NodeCapabilities)capabilities)
            : null;
    }
}

/// <summary>Authentication outcome; on success the tunnel's keepalive interval.</summary>
internal sealed record AuthResultMessage(bool Accepted, string Reason, uint KeepAliveMilliseconds, string PublicHost)
{
    public ReadOnlyMemory<byte> Encode() =>
        new PayloadWriter().U8(Accepted ? (byte)1 : (byte)0).String(Reason).U32(KeepAliveMilliseconds).String(PublicHost).WrittenMemory;

    public static AuthResultMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryU8(out var ok) && r.TryString(out var reason) && r.TryU32(out var keepAlive) && r.TryString(out var host) && r.IsEmpty
            ? new AuthResultMessage(ok == 1, reason, keepAlive, host)
            : null;
    }
}

/// <summary>A request to publish a mapping.</summary>
internal sealed record MapRequestMessage(
    uint RequestId, string Name, RelayProtocol Protocol, string TargetHost, ushort TargetPort,
    ushort PreferredPort, bool ProxyProtocol, long BandwidthLimit)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter()
        .U32(RequestId).String(Name).U8((byte)Protocol).String(TargetHost).U16(TargetPort)
        .U16(PreferredPort).U8(ProxyProtocol ? (byte)1 : (byte)0).I64(BandwidthLimit).WrittenMemory;

    public static MapRequestMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        if (!(r.TryU32(out var requestId) && r.TryString(out var name) && r.TryU8(out var protocol) && r.TryString(out var host)
              && r.TryU16(out var port) && r.TryU16(out var preferred) && r.TryU8(out var proxy) && r.TryI64(out var limit) && r.IsEmpty))
        {
            return null;
        }

        return protocol is >= 1 and <= 3 && proxy <= 1 && limit >= 0
            ? new MapRequestMessage(requestId, name, (RelayProtocol)protocol, host, port, preferred, proxy == 1, limit)
            : null;
    }
}

/// <summary>Answer to a map or unmap request.</summary>
internal sealed record MapResultMessage(uint RequestId, bool Ok, uint MappingId, ushort PublicPort, string Error)
{
    public ReadOnlyMemory<byte> Encode() =>
        new PayloadWriter().U32(RequestId).U8(Ok ? (byte)1 : (byte)0).U32(MappingId).U16(PublicPort).String(Error).WrittenMemory;

    public static MapResultMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryU32(out var id) && r.TryU8(out var ok) && r.TryU32(out var mappingId) && r.TryU16(out var port) && r.TryString(out var error) && r.IsEmpty
            ? new MapResultMessage(id, ok == 1, mappingId, port, error)
            : null;
    }
}

/// <summary>A request to remove a mapping by name.</summary>
internal sealed record UnmapMessage(uint RequestId, string Name)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().U32(RequestId).String(Name).WrittenMemory;

    public static UnmapMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryU32(out var id) && r.TryString(out var name) && r.IsEmpty ? new UnmapMessage(id, name) : null;
    }
}

/// <summary>A public client connected to a mapping (stream id in the header).</summary>
internal sealed record StreamOpenMessage(uint MappingId, IPEndPoint Client, IPEndPoint Public)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().U32(MappingId).EndPoint(Client).EndPoint(Public).WrittenMemory;

    public static StreamOpenMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryU32(out var mappingId) && r.TryEndPoint(out var client) && r.TryEndPoint(out var pub) && r.IsEmpty
            ? new StreamOpenMessage(mappingId, client!, pub!)
            : null;
    }
}

/// <summary>
/// A public client connected to a mapping served over dedicated connections (data channel id in the header):
/// the node connects the target and opens a data connection presenting <see cref="Nonce"/>.
/// </summary>
internal sealed record DataChannelOpenMessage(uint MappingId, IPEndPoint Client, IPEndPoint Public, byte[] Nonce)
{
    /// <summary>Size of a nonce in bytes.</summary>
    public const int NonceSize = 32;

    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().U32(MappingId).EndPoint(Client).EndPoint(Public).Bytes(Nonce).WrittenMemory;

    public static DataChannelOpenMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryU32(out var mappingId) && r.TryEndPoint(out var client) && r.TryEndPoint(out var pub) && r.TryBytes(out var nonce)
               && nonce.Length == NonceSize && r.IsEmpty
            ? new DataChannelOpenMessage(mappingId, client!, pub!, nonce.ToArray())
            : null;
    }
}

/// <summary>The first frame a node sends on a dedicated data connection (channel id in the header).</summary>
internal sealed record DataChannelMessage(byte[] Nonce)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().Bytes(Nonce).WrittenMemory;

    public static DataChannelMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryBytes(out var nonce) && nonce.Length == DataChannelOpenMessage.NonceSize && r.IsEmpty ? new DataChannelMessage(nonce.ToArray()) : null;
    }
}

/// <summary>The node cannot serve a data channel (channel id in the header); the relay closes the public connection.</summary>
internal sealed record DataChannelRefusedMessage(string Reason)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().String(Reason.Length > 200 ? Reason[..200] : Reason).WrittenMemory;

    public static DataChannelRefusedMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryString(out var reason) && r.IsEmpty ? new DataChannelRefusedMessage(reason) : null;
    }
}

/// <summary>The server is going away; reconnect after the delay.</summary>
internal sealed record GoAwayMessage(uint ReconnectAfterMilliseconds, string Reason)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().U32(ReconnectAfterMilliseconds).String(Reason).WrittenMemory;

    public static GoAwayMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryU32(out var ms) && r.TryString(out var reason) && r.IsEmpty ? new GoAwayMessage(ms, reason) : null;
    }
}

/// <summary>A connection-level error, sent just before closing.</summary>
internal sealed record ErrorMessage(WireError Code, string Message)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().U16((ushort)Code).String(Message).WrittenMemory;

    public static ErrorMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryU16(out var code) && r.TryString(out var message) ? new ErrorMessage((WireError)code, message) : null;
    }
}

/// <summary>
/// Why a stream is reset: a code and a short reason for the peer's log. A bare 2-byte code (no reason) decodes too;
/// a reason that does not parse is reported as such rather than failing the tunnel (the stream is reset either way).
/// </summary>
internal sealed record ResetMessage(WireError Code, string Reason)
{
    /// <summary>Longest reason sent, in characters.</summary>
    public const int MaxReasonLength = 200;

    public ReadOnlyMemory<byte> Encode() =>
        new PayloadWriter().U16((ushort)Code).String(Reason.Length <= MaxReasonLength ? Reason : Reason[..MaxReasonLength]).WrittenMemory;

    public static ResetMessage Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        if (!r.TryU16(out var code))
        {
            return new ResetMessage(WireError.StreamAborted, "malformed reset frame");
        }

        if (r.IsEmpty)
        {
            return new ResetMessage((WireError)code, "no reason given");
        }

        return r.TryString(out var reason) && r.IsEmpty
            ? new ResetMessage((WireError)code, reason.Length <= MaxReasonLength ? reason : reason[..MaxReasonLength])
            : new ResetMessage((WireError)code, "malformed reset reason");
    }
}

/// <summary>Reachability probe request: connect back to the node's observed address on a port.</summary>
internal sealed record ProbeRequestMessage(uint RequestId, ushort Port)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().U32(RequestId).U16(Port).WrittenMemory;

    public static ProbeRequestMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryU32(out var id) && r.TryU16(out var port) && r.IsEmpty && port != 0 ? new ProbeRequestMessage(id, port) : null;
    }
}

/// <summary>Reachability probe result, with the address the relay saw and tried.</summary>
internal sealed record ProbeResultMessage(uint RequestId, bool Reachable, IPEndPoint Tried)
{
    public ReadOnlyMemory<byte> Encode() => new PayloadWriter().U32(RequestId).U8(Reachable ? (byte)1 : (byte)0).EndPoint(Tried).WrittenMemory;

    public static ProbeResultMessage? Decode(ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        return r.TryU32(out var id) && r.TryU8(out var ok) && r.TryEndPoint(out var tried) && r.IsEmpty
            ? new ProbeResultMessage(id, ok == 1, tried!)
            : null;
    }
}

/// <summary>Helpers for small control payloads.</summary>
internal static class PayloadSpan
{
    /// <summary>Returns the payload as one span, copying only when it spans segments.</summary>
    public static ReadOnlySpan<byte> Of(in ReadOnlySequence<byte> payload) => payload.IsSingleSegment ? payload.FirstSpan : payload.ToArray();
}
