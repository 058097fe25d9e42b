using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using DeCloud.Testing;

namespace DeCloud.Relay.Tests.EndToEnd;

/// <summary>The loopback suite in the default transport (Automatic: dedicated data connections over a plain tunnel); <see cref="MultiplexedLoopbackTests"/> runs it multiplexed.</summary>
public class RelayLoopbackTests
{
    /// <summary>The data path the relay and every node in this suite use for TCP streams.</summary>
    protected virtual RelayStreamTransport Transport => RelayStreamTransport.Automatic;

    private Task<RelayHarness> StartHarnessAsync(Action<RelayServerOptions>? configure = null) => RelayHarness.StartAsync(configure, Transport);

    [Fact]
    public async Task AddMapping_Tcp_ForwardsEchoThroughTheRelay()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();

        Assert.InRange(mapping.PublicPort, harness.PortStart, harness.PortStart + 39);
        Assert.StartsWith("PUBLIC tcp ", mapping.ToString(), StringComparison.Ordinal);
        using var socket = await Net.ConnectAsync(mapping.PublicPort);
        var payload = new byte[3 * 1024 * 1024];
        Random.Shared.NextBytes(payload);
        Assert.Equal(payload, await Net.RoundTripAsync(socket, payload));
    }

    [Fact]
    public async Task Pump_ClientHalfCloses_TargetSeesEndAndReplyStillArrives()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        using var socket = await Net.ConnectAsync(mapping.PublicPort);
        await socket.SendAsync("half-close"u8.ToArray().AsMemory()).AsTask().Within();
        socket.Shutdown(SocketShutdown.Send);
        var received = new MemoryStream();
        var buffer = new byte[1024];
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory()).AsTask().Within();
            if (n == 0)
            {
                break;
            }

            received.Write(buffer, 0, n);
        }

        Assert.Equal("half-close"u8.ToArray(), received.ToArray());
    }

    [Fact]
    public async Task Connect_WrongSecret_RefusedAndOtherNodesKeepWorking()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        var good = await harness.StartClientAsync("good");
        var mapping = await good.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        var bad = await harness.StartClientAsync("bad", secret: "ffffffffffffffffffffffffffffffff"u8.ToArray(), waitConnected: false);

        var deadline = Stopwatch.StartNew();
        while (bad.LastError is null && deadline.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(20);
        }

        var error = Assert.IsType<RelayAuthenticationException>(bad.LastError);
        Assert.Contains("wrong secret", error.Message, StringComparison.Ordinal);
        Assert.False(bad.IsConnected);
        Assert.DoesNotContain("bad", harness.Server.ConnectedNodes);
        await Net.EchoWorksAsync(mapping.PublicPort);
    }

    [Fact]
    public async Task Reconnect_AfterTunnelDrop_SamePublicPort()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();

        client.DropTunnel("test: network dropped");
        await WaitForAsync(() => client.ConnectCount >= 2 && client.IsConnected, "reconnect");
        await WaitForAsync(() => client.Mappings.Count == 1, "republish");
        Assert.Equal(mapping.PublicPort, client.Mappings[0].PublicPort);
        await Net.EchoWorksAsync(mapping.PublicPort);
    }

    [Fact]
    public async Task Restart_RelayProcess_NodeGetsTheSamePortsBack()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        await using var udp = new UdpEcho();
        var client = await harness.StartClientAsync();
        var tcp = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        var both = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.TcpAndUdp, "127.0.0.1", udp.Port) { Name = "game" }).Within();

        await harness.RestartServerAsync();

        // The restarted relay reconciled its database: the ports are reserved (and bound) before the node is back.
        Assert.Equal(2, harness.Server.GetMappings("node-1").Count);
        await WaitForAsync(() => client.ConnectCount >= 2 && client.IsConnected, "reconnect after restart");
        await Net.EchoWorksAsync(tcp.PublicPort);
        var after = harness.Server.GetMappings("node-1");
        Assert.Contains(after, m => m.Name == tcp.Name && m.PublicPort == tcp.PublicPort);
        Assert.Contains(after, m => m.Name == "game" && m.PublicPort == both.PublicPort);
    }

    [Fact]
    public async Task StopAsync_GoAway_ClientReconnectsToTheNextRelay()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        await harness.Server.StopAsync().Within();
        await harness.RestartServerAsync();
        await WaitForAsync(() => client.ConnectCount >= 2 && client.IsConnected, "reconnect after go-away");
        await Net.EchoWorksAsync(mapping.PublicPort);
    }

    [Fact]
    public async Task RemoveMapping_AtRunTime_ReleasesThePortAndOthersKeepWorking()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var first = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port) { Name = "a" }).Within();
        var second = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port) { Name = "b" }).Within();
        Assert.NotEqual(first.PublicPort, second.PublicPort);

        Assert.True(await client.RemoveMappingAsync("a").Within());
        Assert.False(await client.RemoveMappingAsync("a").Within());
        await Assert.ThrowsAnyAsync<SocketException>(() => Net.ConnectAsync(first.PublicPort));
        await Net.EchoWorksAsync(second.PublicPort);

        var again = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port) { Name = "c", PreferredPublicPort = first.PublicPort }).Within();
        Assert.Equal(first.PublicPort, again.PublicPort);
    }

    [Fact]
    public async Task AddMapping_OverQuota_ThrowsMappingExceptionNamingTheQuota()
    {
        await using var harness = await StartHarnessAsync(o => o.MaxPortsPerNode = 1);
        var client = await harness.StartClientAsync();
        await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", 1) { Name = "one" }).Within();
        var ex = await Assert.ThrowsAsync<RelayMappingException>(() => client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", 2) { Name = "two" }).Within());
        Assert.Contains("quota of 1", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddMapping_PortHeldByAnotherProcess_NeverHandedOut()
    {
        await using var harness = await StartHarnessAsync();
        using var squatter = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        squatter.Bind(new IPEndPoint(IPAddress.Loopback, harness.PortStart));
        squatter.Listen();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", 9) { PreferredPublicPort = harness.PortStart }).Within();
        Assert.NotEqual(harness.PortStart, mapping.PublicPort);
    }

    [Fact]
    public async Task Target_Unreachable_PublicConnectionClosedAndTunnelStaysUp()
    {
        await using var harness = await StartHarnessAsync();
        using var closedPort = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        closedPort.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var deadPort = ((IPEndPoint)closedPort.LocalEndPoint!).Port;
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", deadPort)).Within();
        var buffer = new byte[16];
        try
        {
            // Under load the relay's reset can arrive while the connect completes: then the connect reports it.
            using var socket = await Net.ConnectAsync(mapping.PublicPort);
            Assert.Equal(0, await socket.ReceiveAsync(buffer.AsMemory()).AsTask().Within());
        }
        catch (SocketException)
        {
            // A reset is as good as a close here.
        }

        Assert.True(client.IsConnected);
        Assert.Equal(1, client.ConnectCount);
    }

    [Fact]
    public async Task SlowStream_ClientNeverReads_OtherStreamsKeepFlowing()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();

        using var stalled = await Net.ConnectAsync(mapping.PublicPort);
        stalled.ReceiveBufferSize = 64 * 1024;
        var chunk = new byte[1024 * 1024];
        using var stopFlood = new CancellationTokenSource();
        var flood = Task.Run(async () =>
        {
            try
            {
                for (var i = 0; i < 64; i++)
                {
                    await stalled.SendAsync(chunk, stopFlood.Token);
                }
            }
            catch (Exception)
            {
            }
        });

        // Let the stalled stream fill every buffer and its window on the way.
        await Task.Delay(500);
        var sw = Stopwatch.StartNew();
        using var fast = await Net.ConnectAsync(mapping.PublicPort);
        for (var i = 0; i < 200; i++)
        {
            await Net.RoundTripAsync(fast, new byte[64]);
        }

        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(15), $"200 round trips took {sw.Elapsed}");
        Assert.False(flood.IsCompleted, "the flood should be stuck on backpressure, not finished");
        Assert.True(client.IsConnected);
        stopFlood.Cancel();
        stalled.Close(0);
        await flood.Within();
    }

    [Fact]
    public async Task Streams_ManyConcurrent_AllEchoCorrectly()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        var tasks = Enumerable.Range(0, 32).Select(async i =>
        {
            using var socket = await Net.ConnectAsync(mapping.PublicPort);
            var payload = new byte[200_000 + i];
            new Random(i).NextBytes(payload);
            Assert.Equal(payload, await Net.RoundTripAsync(socket, payload));
        });
        await Task.WhenAll(tasks).Within(TimeSpan.FromMinutes(1));
    }

    [Fact]
    public async Task StreamFlood_OverTheLimit_ExtraConnectionsRefusedExistingOnesWork()
    {
        await using var harness = await StartHarnessAsync(o => o.MaxStreamsPerTunnel = 4);
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        var held = new List<Socket>();
        for (var i = 0; i < 4; i++)
        {
            var s = await Net.ConnectAsync(mapping.PublicPort);
            await Net.RoundTripAsync(s, [1, 2, 3]);
            held.Add(s);
        }

        // The fifth connection is refused (closed with a reset) while the tunnel and the other four stay up.
        try
        {
            using var extra = await Net.ConnectAsync(mapping.PublicPort);
            Assert.Equal(0, await extra.ReceiveAsync(new byte[4].AsMemory()).AsTask().Within());
        }
        catch (SocketException ex)
        {
            Assert.Equal(SocketError.ConnectionReset, ex.SocketErrorCode);
        }

        foreach (var s in held)
        {
            Assert.Equal(new byte[] { 9 }, await Net.RoundTripAsync(s, [9]));
            s.Dispose();
        }

        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task ProxyProtocol_Enabled_TargetSeesTheRealClientAddress()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho(expectProxy: true);
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port) { UseProxyProtocol = true }).Within();
        using var socket = await Net.ConnectAsync(mapping.PublicPort);
        Assert.Equal("x"u8.ToArray(), await Net.RoundTripAsync(socket, "x"u8.ToArray()));
        Assert.True(echo.ProxySources.TryDequeue(out var source));
        Assert.Equal(socket.LocalEndPoint, source);
    }

    [Fact]
    public async Task BandwidthLimit_PerMapping_CapsThroughput()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        const int limit = 1024 * 1024;
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port) { BandwidthLimitBytesPerSecond = limit }).Within();
        using var socket = await Net.ConnectAsync(mapping.PublicPort);
        var payload = new byte[2 * limit];
        var sw = Stopwatch.StartNew();
        await Net.RoundTripAsync(socket, payload);

        // 2 MiB at 1 MiB/s after a 100 KiB burst: at least ~1.8 s, and not absurdly more.
        Assert.InRange(sw.Elapsed.TotalSeconds, 1.6, 12);
    }

    [Fact]
    public async Task Udp_Mapping_EchoesPerClientFlows()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new UdpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Udp, "127.0.0.1", echo.Port)).Within();

        using var a = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        using var b = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        a.Connect(IPAddress.Loopback, mapping.PublicPort);
        b.Connect(IPAddress.Loopback, mapping.PublicPort);
        await UdpRoundTripAsync(a, "from-a");
        await UdpRoundTripAsync(b, "from-b");
        await UdpRoundTripAsync(a, "again-a");

        // Two public clients became two flows on the node, each with its own socket toward the target.
        Assert.Equal(2, echo.Sources.Count);
    }

    [Fact]
    public async Task Udp_IdleFlow_ExpiresAndANewFlowStarts()
    {
        await using var harness = await StartHarnessAsync(o => o.UdpFlowIdleTimeout = TimeSpan.FromMilliseconds(300));
        await using var echo = new UdpEcho();
        var client = await harness.StartClientAsync(configure: o => o.UdpFlowIdleTimeout = TimeSpan.FromMilliseconds(300));
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Udp, "127.0.0.1", echo.Port)).Within();
        using var a = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        a.Connect(IPAddress.Loopback, mapping.PublicPort);
        await UdpRoundTripAsync(a, "one");
        await Task.Delay(1200);
        await UdpRoundTripAsync(a, "two");
        Assert.Equal(2, echo.Sources.Count);
    }

    [Fact]
    public async Task Probe_NodeListening_ReachableOtherwiseNot()
    {
        await using var harness = await StartHarnessAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        Assert.Equal(RelayReachability.Reachable, await client.ProbeReachabilityAsync(echo.Port).Within());
        using var unused = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        unused.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Assert.NotEqual(RelayReachability.Reachable, await client.ProbeReachabilityAsync(((IPEndPoint)unused.LocalEndPoint!).Port).Within());
    }

    internal static async Task UdpRoundTripAsync(Socket socket, string text)
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes(text);
        var buffer = new byte[1500];
        for (var attempt = 0; ; attempt++)
        {
            await socket.SendAsync(bytes);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                var n = await socket.ReceiveAsync(buffer, wait.Token);
                Assert.Equal(text, System.Text.Encoding.ASCII.GetString(buffer, 0, n));
                return;
            }
            catch (OperationCanceledException) when (attempt < 3)
            {
                // UDP may drop; a bounded number of resends.
            }
        }
    }

    internal static async Task WaitForAsync(Func<bool> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException($"Timed out waiting for {what}.");
            }

            await Task.Delay(20);
        }
    }
}

/// <summary>The whole loopback suite again with every stream multiplexed in the tunnel.</summary>
public sealed class MultiplexedLoopbackTests : RelayLoopbackTests
{
    protected override RelayStreamTransport Transport => RelayStreamTransport.Multiplexed;
}
