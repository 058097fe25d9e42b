using System.Net;
using CsCheck;
using DeCloud.Relay.Protocol;

namespace DeCloud.Relay.Tests.Protocol;

public sealed class MessageTests
{
    [Fact]
    public void MapRequest_RoundTrip_PreservesEveryField()
    {
        var message = new MapRequestMessage(9, "web", RelayProtocol.TcpAndUdp, "10.0.0.5", 8080, 41000, true, 1_000_000);
        Assert.Equal(message, MapRequestMessage.Decode(message.Encode().Span));
    }

    [Fact]
    public void StreamOpen_RoundTripIpv4AndIpv6_PreservesEndPoints()
    {
        var message = new StreamOpenMessage(3, new IPEndPoint(IPAddress.Parse("203.0.113.7"), 5555), new IPEndPoint(IPAddress.IPv6Loopback, 40001));
        var decoded = StreamOpenMessage.Decode(message.Encode().Span);
        Assert.NotNull(decoded);
        Assert.Equal(message.Client, decoded.Client);
        Assert.Equal(message.Public, decoded.Public);
    }

    [Fact]
    public void Decoders_EveryTruncation_ReturnNull()
    {
        var encoded = new MapRequestMessage(1, "n", RelayProtocol.Tcp, "h", 1, 0, false, 0).Encode().ToArray();
        for (var cut = 0; cut < encoded.Length; cut++)
        {
            Assert.Null(MapRequestMessage.Decode(encoded.AsSpan(0, cut)));
        }

        var auth = new AuthMessage("node", new byte[32]).Encode().ToArray();
        for (var cut = 0; cut < auth.Length; cut++)
        {
            Assert.Null(AuthMessage.Decode(auth.AsSpan(0, cut)));
        }
    }

    [Fact]
    public void MapRequest_InvalidProtocolOrNegativeLimit_ReturnsNull()
    {
        Assert.Null(MapRequestMessage.Decode(new MapRequestMessage(1, "n", (RelayProtocol)7, "h", 1, 0, false, 0).Encode().Span));
        Assert.Null(MapRequestMessage.Decode(new MapRequestMessage(1, "n", RelayProtocol.Tcp, "h", 1, 0, false, -1).Encode().Span));
    }

    [Fact]
    public void Decoders_RandomPayloads_NeverThrow()
    {
        Gen.Byte.Array[0, 120].Sample(bytes =>
        {
            _ = HelloMessage.Decode(bytes);
            _ = AuthMessage.Decode(bytes);
            _ = AuthResultMessage.Decode(bytes);
            _ = MapRequestMessage.Decode(bytes);
            _ = MapResultMessage.Decode(bytes);
            _ = UnmapMessage.Decode(bytes);
            _ = StreamOpenMessage.Decode(bytes);
            _ = GoAwayMessage.Decode(bytes);
            _ = ErrorMessage.Decode(bytes);
            _ = ProbeRequestMessage.Decode(bytes);
            _ = ProbeResultMessage.Decode(bytes);
            _ = DataChannelOpenMessage.Decode(bytes);
            _ = DataChannelMessage.Decode(bytes);
            _ = DataChannelRefusedMessage.Decode(bytes);
        }, iter: 20_000);
    }

    [Fact]
    public void AuthMessage_InvalidUtf8NodeId_ReturnsNull()
    {
        byte[] payload = [0, 2, 0xC3, 0x28, 0, 0];
        Assert.Null(AuthMessage.Decode(payload));
    }

    [Fact]
    public void DataChannelOpen_RoundTrip_PreservesEveryField()
    {
        var nonce = Enumerable.Range(0, DataChannelOpenMessage.NonceSize).Select(i => (byte)i).ToArray();
        var message = new DataChannelOpenMessage(7, new IPEndPoint(IPAddress.Parse("203.0.113.7"), 5555), new IPEndPoint(IPAddress.IPv6Loopback, 40001), nonce);
        var decoded = DataChannelOpenMessage.Decode(message.Encode().Span);
        Assert.NotNull(decoded);
        Assert.Equal(message.MappingId, decoded.MappingId);
        Assert.Equal(message.Client, decoded.Client);
        Assert.Equal(message.Public, decoded.Public);
        Assert.Equal(nonce, decoded.Nonce);
    }

    [Fact]
    public void DataChannelMessages_EveryTruncationOrWrongNonceSize_ReturnNull()
    {
        var nonce = new byte[DataChannelOpenMessage.NonceSize];
        var open = new DataChannelOpenMessage(1, new IPEndPoint(IPAddress.Loopback, 1), new IPEndPoint(IPAddress.Loopback, 2), nonce).Encode().ToArray();
        var present = new DataChannelMessage(nonce).Encode().ToArray();
        for (var cut = 0; cut < open.Length; cut++)
        {
            Assert.Null(DataChannelOpenMessage.Decode(open.AsSpan(0, cut)));
        }

        for (var cut = 0; cut < present.Length; cut++)
        {
            Assert.Null(DataChannelMessage.Decode(present.AsSpan(0, cut)));
        }

        Assert.NotNull(DataChannelMessage.Decode(present));
        Assert.Null(DataChannelMessage.Decode(new DataChannelMessage(new byte[16]).Encode().Span));
        Assert.Null(DataChannelOpenMessage.Decode(new DataChannelOpenMessage(1, new IPEndPoint(IPAddress.Loopback, 1), new IPEndPoint(IPAddress.Loopback, 2), new byte[33]).Encode().Span));
    }

    [Fact]
    public void AuthMessage_Capabilities_RoundTrip()
    {
        var message = new AuthMessage("node", new byte[32], NodeCapabilities.DedicatedConnections);
        Assert.Equal(NodeCapabilities.DedicatedConnections, AuthMessage.Decode(message.Encode().Span)!.Capabilities);
    }
}
