using System.Net;
using System.Net.Sockets;
using DeCloud.Relay.Protocol;
using DeCloud.Testing;

namespace DeCloud.Relay.Tests.EndToEnd;

/// <summary>Dedicated data connections: transport negotiation, the nonce's rules, and what a bad or flooding peer gets.</summary>
public sealed class DedicatedConnectionTests
{
    /// <summary>A hand-driven node: authenticated tunnel with the dedicated capability and one TCP mapping.</summary>
    private sealed class RawNode : IDisposable
    {
        private readonly Socket _socket;

        private RawNode(Socket socket, NetworkStream stream, int publicPort)
        {
            _socket = socket;
            Stream = stream;
            PublicPort = publicPort;
        }

        public NetworkStream Stream { get; }

        public int PublicPort { get; }

        public static async Task<RawNode> ConnectAsync(RelayHarness harness, string nodeId = "raw")
        {
            var socket = await Net.ConnectAsync(harness.ControlPort);
            var stream = new NetworkStream(socket, ownsSocket: true);
            var hello = HelloMessage.Decode((await HandshakeFrames.ReadAsync(stream, CancellationToken.None).AsTask().Within()).Payload)!;
            var proof = await new HmacChallengeCredentials(RelayHarness.Secret).CreateProofAsync(nodeId, hello.Challenge);
            await HandshakeFrames.WriteAsync(stream, FrameType.Auth, 0, new AuthMessage(nodeId, proof.ToArray(), NodeCapabilities.DedicatedConnections).Encode(), CancellationToken.None);
            Assert.True(AuthResultMessage.Decode((await HandshakeFrames.ReadAsync(stream, CancellationToken.None).AsTask().Within()).Payload)!.Accepted);
            await HandshakeFrames.WriteAsync(stream, FrameType.MapRequest, 0, new MapRequestMessage(1, "web", RelayProtocol.Tcp, "127.0.0.1", 9, 0, false, 0).Encode(), CancellationToken.None);
            var (header, payload) = await HandshakeFrames.ReadAsync(stream, CancellationToken.None).AsTask().Within();
            while (header.Type == FrameType.Ping)
            {
                (header, payload) = await HandshakeFrames.ReadAsync(stream, CancellationToken.None).AsTask().Within();
            }

            Assert.Equal(FrameType.MapResult, header.Type);
            var result = MapResultMessage.Decode(payload);
            Assert.True(result?.Ok, result?.Error);
            return new RawNode(socket, stream, result!.PublicPort);
        }

        /// <summary>Reads frames until the relay asks for a data channel.</summary>
        public async Task<(uint ChannelId, byte[] Nonce)> NextDataChannelOpenAsync()
        {
            while (true)
            {
                var (header, payload) = await HandshakeFrames.ReadAsync(Stream, CancellationToken.None).AsTask().Within(what: "DataChannelOpen");
                if (header.Type == FrameType.DataChannelOpen)
                {
                    return (header.StreamId, DataChannelOpenMessage.Decode(payload)!.Nonce);
                }
            }
        }

        public void Dispose()
        {
            Stream.Dispose();
            _socket.Dispose();
        }
    }

    /// <summary>Opens a data connection, reads the relay's Hello and presents <paramref name="nonce"/> for <paramref name="channelId"/>.</summary>
    private static async Task<Socket> PresentAsync(RelayHarness harness, uint channelId, byte[] nonce)
    {
        var socket = await Net.ConnectAsync(harness.ControlPort);
        using var stream = new NetworkStream(socket, ownsSocket: false);
        Assert.Equal(FrameType.Hello, (await HandshakeFrames.ReadAsync(stream, CancellationToken.None).AsTask().Within()).Header.Type);
        await HandshakeFrames.WriteAsync(stream, FrameType.DataChannel, channelId, new DataChannelMessage(nonce).Encode(), CancellationToken.None);
        return socket;
    }

    /// <summary>True when the peer closed (a clean end or a reset) within the time box.</summary>
    private static async Task<bool> ClosedAsync(Socket socket)
    {
        var buffer = new byte[1024];
        try
        {
            while (await socket.ReceiveAsync(buffer.AsMemory()).AsTask().Within(what: "close") > 0)
            {
            }
        }
        catch (SocketException)
        {
        }

        return true;
    }

    private static async Task<byte[]> ReceiveExactlyAsync(Socket socket, int count)
    {
        var buffer = new byte[count];
        var read = 0;
        while (read < count)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read)).AsTask().Within();
            Assert.NotEqual(0, n);
            read += n;
        }

        return buffer;
    }

    [Theory]
    [InlineData(RelayStreamTransport.DedicatedConnection, RelayStreamTransport.DedicatedConnection, RelayStreamTransport.DedicatedConnection)]
    [InlineData(RelayStreamTransport.DedicatedConnection, RelayStreamTransport.Multiplexed, RelayStreamTransport.Multiplexed)]
    [InlineData(RelayStreamTransport.Multiplexed, RelayStreamTransport.DedicatedConnection, RelayStreamTransport.Multiplexed)]
    [InlineData(RelayStreamTransport.Automatic, RelayStreamTransport.Automatic, RelayStreamTransport.DedicatedConnection)]
    public async Task Transport_RelayAndNodeSettings_DedicatedOnlyWhenBothAllowAndEitherWayForwards(
        RelayStreamTransport relay, RelayStreamTransport node, RelayStreamTransport expected)
    {
        await using var harness = await RelayHarness.StartAsync(o => o.StreamTransport = relay);
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync(configure: o => o.StreamTransport = node);
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        Assert.Equal(expected, harness.Server.TransportOf("node-1"));
        using var socket = await Net.ConnectAsync(mapping.PublicPort);
        var payload = new byte[2_000_000];
        new Random(4).NextBytes(payload);
        Assert.Equal(payload, await Net.RoundTripAsync(socket, payload));
    }

    [Fact]
    public async Task DataConnection_WrongNonceThenRightThenReplayed_OnlyTheRightOneCarriesTheStream()
    {
        await using var harness = await RelayHarness.StartAsync();
        using var node = await RawNode.ConnectAsync(harness);
        using var client = await Net.ConnectAsync(node.PublicPort);
        var (channelId, nonce) = await node.NextDataChannelOpenAsync();

        var wrong = (byte[])nonce.Clone();
        wrong[0] ^= 0xFF;
        using (var impostor = await PresentAsync(harness, channelId, wrong))
        {
            Assert.True(await ClosedAsync(impostor));
        }

        using var data = await PresentAsync(harness, channelId, nonce);
        await client.SendAsync("ping"u8.ToArray().AsMemory()).AsTask().Within();
        Assert.Equal("ping"u8.ToArray(), await ReceiveExactlyAsync(data, 4));
        await data.SendAsync("pong"u8.ToArray().AsMemory()).AsTask().Within();
        Assert.Equal("pong"u8.ToArray(), await ReceiveExactlyAsync(client, 4));

        using (var replay = await PresentAsync(harness, channelId, nonce))
        {
            Assert.True(await ClosedAsync(replay));
        }

        // The stream that got the right connection is unaffected by the refused ones.
        await client.SendAsync("again"u8.ToArray().AsMemory()).AsTask().Within();
        Assert.Equal("again"u8.ToArray(), await ReceiveExactlyAsync(data, 5));
        Assert.Equal(0, harness.Server.PendingDataChannels);
    }

    [Fact]
    public async Task DataConnection_AfterTheOpenTimeout_PublicClientClosedAndNonceExpired()
    {
        await using var harness = await RelayHarness.StartAsync(o => o.StreamOpenTimeout = TimeSpan.FromMilliseconds(300));
        using var node = await RawNode.ConnectAsync(harness);
        using var client = await Net.ConnectAsync(node.PublicPort);
        var (channelId, nonce) = await node.NextDataChannelOpenAsync();
        Assert.True(await ClosedAsync(client));
        Assert.Equal(0, harness.Server.PendingDataChannels);
        using var late = await PresentAsync(harness, channelId, nonce);
        Assert.True(await ClosedAsync(late));
    }

    [Fact]
    public async Task DataChannelRefused_FromTheNode_PublicClientClosedAtOnce()
    {
        await using var harness = await RelayHarness.StartAsync(o => o.StreamOpenTimeout = TimeSpan.FromMinutes(5));
        using var node = await RawNode.ConnectAsync(harness);
        using var client = await Net.ConnectAsync(node.PublicPort);
        var (channelId, _) = await node.NextDataChannelOpenAsync();
        await HandshakeFrames.WriteAsync(node.Stream, FrameType.DataChannelRefused, channelId, new DataChannelRefusedMessage("target down").Encode(), CancellationToken.None);
        Assert.True(await ClosedAsync(client));
        Assert.Equal(0, harness.Server.PendingDataChannels);
    }

    [Fact]
    public async Task DataConnection_MalformedOrSilent_ClosedAndRelayKeepsServing()
    {
        await using var harness = await RelayHarness.StartAsync(o => o.HandshakeTimeout = TimeSpan.FromMilliseconds(500));
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();

        using var malformed = await Net.ConnectAsync(harness.ControlPort);
        using (var stream = new NetworkStream(malformed, ownsSocket: false))
        {
            _ = await HandshakeFrames.ReadAsync(stream, CancellationToken.None).AsTask().Within();
            await HandshakeFrames.WriteAsync(stream, FrameType.DataChannel, 1, new byte[] { 0, 3, 1, 2, 3 }, CancellationToken.None);
        }

        using var silent = await Net.ConnectAsync(harness.ControlPort);
        using var unknown = await PresentAsync(harness, 987_654, new byte[DataChannelOpenMessage.NonceSize]);
        Assert.True(await ClosedAsync(malformed));
        Assert.True(await ClosedAsync(unknown));
        Assert.True(await ClosedAsync(silent));
        Assert.True(client.IsConnected);
        await Net.EchoWorksAsync(mapping.PublicPort);
    }

    [Fact]
    public async Task ConnectionFlood_OverTheHandshakeLimit_ShedAtOnceEstablishedStreamsUnaffected()
    {
        await using var harness = await RelayHarness.StartAsync(o =>
        {
            o.MaxPendingHandshakes = 8;
            o.HandshakeTimeout = TimeSpan.FromSeconds(2);
        });
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync(configure: o => o.DataConnectionPoolSize = 0);
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        using var established = await Net.ConnectAsync(mapping.PublicPort);
        Assert.Equal("before"u8.ToArray(), await Net.RoundTripAsync(established, "before"u8.ToArray()));

        var flood = new List<Socket>();
        try
        {
            var shedBeforeConnected = 0;
            for (var i = 0; i < 64; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, harness.ControlPort)).Within();
                    flood.Add(socket);
                }
                catch (SocketException)
                {
                    // The relay reset it so fast that the connect itself reports it.
                    shedBeforeConnected++;
                    socket.Dispose();
                }
            }

            Assert.InRange(harness.Server.PendingHandshakes, 0, 8);
            Assert.Equal("during"u8.ToArray(), await Net.RoundTripAsync(established, "during"u8.ToArray()));
            await Task.WhenAll(flood.Select(ClosedAsync)).Within(TimeSpan.FromSeconds(30));
        }
        finally
        {
            foreach (var socket in flood)
            {
                socket.Dispose();
            }
        }

        Assert.True(client.IsConnected);
        await Net.EchoWorksAsync(mapping.PublicPort, "after");
    }

    [Fact]
    public async Task TunnelDropped_DedicatedStreamsOfThatTunnelClose()
    {
        await using var harness = await RelayHarness.StartAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        using var socket = await Net.ConnectAsync(mapping.PublicPort);
        Assert.Equal("x"u8.ToArray(), await Net.RoundTripAsync(socket, "x"u8.ToArray()));
        client.DropTunnel("test");
        Assert.True(await ClosedAsync(socket));
        await Net.EchoWorksAsync(mapping.PublicPort);
    }

    [Fact]
    public async Task WarmPool_AfterABurst_FilledThenClosedWhenIdle()
    {
        await using var harness = await RelayHarness.StartAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync(configure: o =>
        {
            o.DataConnectionPoolSize = 3;
            o.DataConnectionPoolIdleTimeout = TimeSpan.FromMilliseconds(400);
        });
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        Assert.Equal(0, client.WarmDataConnectionCount);
        await Net.EchoWorksAsync(mapping.PublicPort);
        await RelayLoopbackTests.WaitForAsync(() => client.WarmDataConnectionCount == 3, "the pool filling after the first stream");
        for (var i = 0; i < 5; i++)
        {
            await Net.EchoWorksAsync(mapping.PublicPort, $"warm {i}");
        }

        await RelayLoopbackTests.WaitForAsync(() => client.WarmDataConnectionCount == 0, "idle warm connections closing");
        await Net.EchoWorksAsync(mapping.PublicPort, "cold again");
    }
}
