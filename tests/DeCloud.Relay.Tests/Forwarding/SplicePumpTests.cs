using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using DeCloud.Relay.Forwarding;
using DeCloud.Relay.Tests.EndToEnd;
using DeCloud.Testing;

namespace DeCloud.Relay.Tests.Forwarding;

/// <summary>
/// The zero-copy (splice) path of <see cref="ConnectionPump"/> on real loopback sockets, each scenario also run through
/// the copy path (<c>zeroCopy: false</c>) where both must behave the same. A test-owned pipe pool shows which path ran:
/// a spliced burst leaves an empty pipe in it, the copy path never touches it.
/// </summary>
public sealed class SplicePumpTests
{
    private static bool SpliceAvailable => ConnectionPump.ZeroCopyAvailable;

    internal static async Task<(Socket Outer, Socket Inner)> PairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var outer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accept = listener.AcceptAsync();
        await outer.ConnectAsync(listener.LocalEndPoint!).Within();
        var inner = await accept.Within();
        inner.NoDelay = true;
        return (outer, inner);
    }

    /// <summary>client -> [near | pump | far] -> node, the shape of one relay hop.</summary>
    private sealed class Hop : IAsyncDisposable
    {
        private Hop(Socket client, Socket node, Task<PumpResult> pump, SplicePipePool pool)
        {
            Client = client;
            Node = node;
            Pump = pump;
            Pool = pool;
        }

        public Socket Client { get; }

        public Socket Node { get; }

        public Task<PumpResult> Pump { get; }

        public SplicePipePool Pool { get; }

        public static async Task<Hop> StartAsync(
            bool zeroCopy, TokenBucket? inboundLimit = null, SplicePipePool? pool = null, CancellationToken cancellationToken = default)
        {
            var (client, near) = await PairAsync();
            var (far, node) = await PairAsync();
            pool ??= new SplicePipePool(SplicePipePool.DefaultPipeSize, 4);
            var pump = ConnectionPump.RunAsync(
                new RawConnection(near), new RawConnection(far), PumpDirection.PublicSide, inboundLimit, null, zeroCopy ? pool : null, cancellationToken);
            return new Hop(client, node, pump, pool);
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            Node.Dispose();
            await Pump.Within(what: "the pump to end");
            Pool.Dispose();
        }
    }

    private static async Task SendAllAndShutdownAsync(Socket socket, byte[] data)
    {
        // Uneven chunks, so the pump sees partial buffers and bursts.
        var random = new Random(data.Length);
        for (var offset = 0; offset < data.Length;)
        {
            var n = Math.Min(data.Length - offset, random.Next(1, 300_000));
            await socket.SendAsync(data.AsMemory(offset, n)).AsTask().Within();
            offset += n;
        }

        socket.Shutdown(SocketShutdown.Send);
    }

    private static async Task<byte[]> HashToEndAsync(Socket socket, int readSize = 64 * 1024, Func<Task>? pause = null)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[readSize];
        var reads = 0;
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory()).AsTask().Within();
            if (n == 0)
            {
                return hash.GetHashAndReset();
            }

            hash.AppendData(buffer, 0, n);
            if (pause is not null && ++reads % 16 == 0)
            {
                await pause();
            }
        }
    }

    private static byte[] RandomBytes(int size, int seed)
    {
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static void AssertPathTaken(Hop hop, bool zeroCopy)
    {
        if (zeroCopy && SpliceAvailable)
        {
            Assert.True(hop.Pool.IdleCount > 0, "the zero-copy path should have used (and given back) a pipe");
        }
        else
        {
            Assert.Equal(0, hop.Pool.IdleCount);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_LargeTransfersBothWaysAtOnce_EveryByteArrivesInOrder(bool zeroCopy)
    {
        await using var hop = await Hop.StartAsync(zeroCopy);
        var up = RandomBytes(24 * 1024 * 1024 + 17, 1);
        var down = RandomBytes(16 * 1024 * 1024 + 3, 2);
        var sends = Task.WhenAll(SendAllAndShutdownAsync(hop.Client, up), SendAllAndShutdownAsync(hop.Node, down));
        var atNode = HashToEndAsync(hop.Node);
        var atClient = HashToEndAsync(hop.Client);
        Assert.Equal(SHA256.HashData(up), await atNode.Within());
        Assert.Equal(SHA256.HashData(down), await atClient.Within());
        await sends.Within();
        Assert.Equal(PumpResult.Completed, await hop.Pump.Within());
        AssertPathTaken(hop, zeroCopy);
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task RunAsync_OneSideHalfCloses_EndPassedOnAndTheOtherDirectionKeepsFlowing(bool zeroCopy, bool clientClosesFirst)
    {
        await using var hop = await Hop.StartAsync(zeroCopy);
        var (first, second) = clientClosesFirst ? (hop.Client, hop.Node) : (hop.Node, hop.Client);
        var opening = RandomBytes(300_000, 3);
        await SendAllAndShutdownAsync(first, opening);
        Assert.Equal(SHA256.HashData(opening), await HashToEndAsync(second));

        // The half-closed direction is over; the other one still carries bytes, then ends too.
        var reply = RandomBytes(2_000_000, 4);
        await SendAllAndShutdownAsync(second, reply);
        Assert.Equal(SHA256.HashData(reply), await HashToEndAsync(first));
        Assert.Equal(PumpResult.Completed, await hop.Pump.Within());
        AssertPathTaken(hop, zeroCopy);
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task RunAsync_OneSideResets_OtherSideResetAndResultNamesTheFailedSide(bool zeroCopy, bool clientResets)
    {
        await using var hop = await Hop.StartAsync(zeroCopy);
        // Bytes flow both ways first, so each direction has spliced (taken and given back a pipe) before the reset.
        var one = new byte[1];
        await hop.Client.SendAsync("x"u8.ToArray().AsMemory()).AsTask().Within();
        Assert.Equal(1, await hop.Node.ReceiveAsync(one.AsMemory()).AsTask().Within());
        await hop.Node.SendAsync("y"u8.ToArray().AsMemory()).AsTask().Within();
        Assert.Equal(1, await hop.Client.ReceiveAsync(one.AsMemory()).AsTask().Within());

        var (failing, survivor) = clientResets ? (hop.Client, hop.Node) : (hop.Node, hop.Client);
        failing.LingerState = new LingerOption(true, 0);
        failing.Close();
        Assert.Equal(clientResets ? PumpResult.SocketFailed : PumpResult.TunnelFailed, await hop.Pump.Within());
        var buffer = new byte[16];
        var error = await Assert.ThrowsAsync<SocketException>(async () =>
        {
            while (await survivor.ReceiveAsync(buffer.AsMemory()).AsTask().Within() > 0)
            {
            }
        });
        Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_SlowReader_BackpressureLosesNoBytes(bool zeroCopy)
    {
        await using var hop = await Hop.StartAsync(zeroCopy);
        // A small receive window and small, paused reads: the pump's output socket is full most of the time.
        hop.Node.ReceiveBufferSize = 16 * 1024;
        var data = RandomBytes(4 * 1024 * 1024, 5);
        var send = SendAllAndShutdownAsync(hop.Client, data);
        var sw = Stopwatch.StartNew();
        var hash = await HashToEndAsync(hop.Node, readSize: 4096, pause: () => Task.Delay(TimeSpan.FromMilliseconds(1))).Within(TimeSpan.FromSeconds(90));
        Assert.Equal(SHA256.HashData(data), hash);
        await send.Within();
        hop.Node.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, await hop.Client.ReceiveAsync(new byte[1].AsMemory()).AsTask().Within());
        Assert.Equal(PumpResult.Completed, await hop.Pump.Within());
        AssertPathTaken(hop, zeroCopy);
        // Evidence for the log: a slow reader is slow, but the pump must not turn that into a stall.
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(90), $"took {sw.Elapsed}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_RateLimited_TransferTakesAtLeastWhatTheBucketAllows(bool zeroCopy)
    {
        const int rate = 2 * 1024 * 1024;
        const int burst = 64 * 1024;
        var limit = new TokenBucket(rate, burst, TimeProvider.System);
        await using var hop = await Hop.StartAsync(zeroCopy, inboundLimit: limit);
        var data = RandomBytes(1024 * 1024 + burst, 6);
        var sw = Stopwatch.StartNew();
        var send = SendAllAndShutdownAsync(hop.Client, data);
        Assert.Equal(SHA256.HashData(data), await HashToEndAsync(hop.Node).Within());
        var elapsed = sw.Elapsed;
        await send.Within();
        // Past the burst, 1 MiB at 2 MiB/s: half a second at least (a little slack for the clock).
        Assert.True(elapsed >= TimeSpan.FromSeconds(0.45), $"took {elapsed}, faster than the limit allows");
        hop.Node.Shutdown(SocketShutdown.Send);
        Assert.Equal(PumpResult.Completed, await hop.Pump.Within());
        AssertPathTaken(hop, zeroCopy);
    }

    [Fact]
    public async Task RunAsync_Cancelled_WhileSplicing_ResultCanceledAndBothSidesClosed()
    {
        using var cancel = new CancellationTokenSource();
        await using var hop = await Hop.StartAsync(zeroCopy: true, cancellationToken: cancel.Token);
        // The node never reads: the pump is in the middle of a transfer when it is cancelled.
        var send = hop.Client.SendAsync(RandomBytes(32 * 1024 * 1024, 7).AsMemory()).AsTask();
        await hop.Node.ReceiveAsync(new byte[1].AsMemory()).AsTask().Within();
        cancel.Cancel();
        Assert.Equal(PumpResult.Canceled, await hop.Pump.Within());
        await Assert.ThrowsAnyAsync<SocketException>(() => send.Within());
    }

    [Fact]
    public async Task RunAsync_TlsOnOneSide_FallsBackToCopyingAndForwards()
    {
        using var certificate = TlsTests.CreateCertificate();
        var (client, near) = await PairAsync();
        var (far, node) = await PairAsync();
        using var pool = new SplicePipePool(SplicePipePool.DefaultPipeSize, 4);
        using (client)
        await using (var nodeTls = new SslStream(new NetworkStream(node, ownsSocket: true)))
        {
            var farTls = new SslStream(new NetworkStream(far, ownsSocket: true));
            await Task.WhenAll(
                farTls.AuthenticateAsServerAsync(certificate),
                nodeTls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "relay", RemoteCertificateValidationCallback = (_, _, _, _) => true })).Within();
            var pump = ConnectionPump.RunAsync(new RawConnection(near), new RawConnection(far, farTls), PumpDirection.PublicSide, null, null, pool, CancellationToken.None);
            var data = RandomBytes(3_000_000, 8);
            var send = SendAllAndShutdownAsync(client, data);
            var received = new MemoryStream();
            await nodeTls.CopyToAsync(received).Within();
            Assert.Equal(data, received.ToArray());
            await send.Within();
            await nodeTls.ShutdownAsync().Within();
            node.Shutdown(SocketShutdown.Send);
            Assert.Equal(0, await client.ReceiveAsync(new byte[1].AsMemory()).AsTask().Within());
            Assert.Equal(PumpResult.Completed, await pump.Within());
            Assert.Equal(0, pool.IdleCount);
        }
    }

    [Fact]
    public async Task RunAsync_ZeroCopyNotAllowedOnAConnection_CopiesAndForwards()
    {
        var (client, near) = await PairAsync();
        var (far, node) = await PairAsync();
        using var pool = new SplicePipePool(SplicePipePool.DefaultPipeSize, 4);
        using (client)
        using (node)
        {
            var pump = ConnectionPump.RunAsync(new RawConnection(near), new RawConnection(far) { AllowZeroCopy = false }, PumpDirection.PublicSide, null, null, pool, CancellationToken.None);
            var data = RandomBytes(2_000_000, 9);
            var send = SendAllAndShutdownAsync(client, data);
            Assert.Equal(SHA256.HashData(data), await HashToEndAsync(node));
            await send.Within();
            node.Shutdown(SocketShutdown.Send);
            Assert.Equal(0, await client.ReceiveAsync(new byte[1].AsMemory()).AsTask().Within());
            Assert.Equal(PumpResult.Completed, await pump.Within());
            Assert.Equal(0, pool.IdleCount);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RelayDialer_UseZeroCopyOption_CarriedOnTheDataConnection(bool zeroCopy)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var accept = listener.AcceptAsync();
        var dialer = new DeCloud.Relay.Client.RelayDialer(new RelayClientOptions
        {
            ServerHost = "127.0.0.1",
            ServerPort = ((IPEndPoint)listener.LocalEndPoint!).Port,
            NodeId = "n",
            UseZeroCopy = zeroCopy,
        });
        await using var connection = await dialer.DialAsync(CancellationToken.None).Within();
        using var accepted = await accept.Within();
        Assert.Equal(zeroCopy, connection.AllowZeroCopy);
        Assert.True(connection.IsPlainSocket);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Relay_UseZeroCopyOnOrOff_DedicatedStreamsForwardExactly(bool zeroCopy)
    {
        await using var harness = await RelayHarness.StartAsync(o => o.UseZeroCopy = zeroCopy, RelayStreamTransport.DedicatedConnection);
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync(configure: o => o.UseZeroCopy = zeroCopy);
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        using var socket = await Net.ConnectAsync(mapping.PublicPort);
        var payload = RandomBytes(8_000_000, 10);
        Assert.Equal(payload, await Net.RoundTripAsync(socket, payload));
    }
}

[CollectionDefinition(nameof(DescriptorCountCollection), DisableParallelization = true)]
public sealed class DescriptorCountCollection;

/// <summary>Counts this process's pipe descriptors, so it runs alone: no other test opens pipes meanwhile.</summary>
[Collection(nameof(DescriptorCountCollection))]
public sealed class SplicePipeDescriptorTests
{
    private static int OpenPipes() =>
        new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos().Count(f => f.LinkTarget?.StartsWith("pipe:", StringComparison.Ordinal) == true);

    [Fact]
    public async Task RunAsync_200StreamsIdleAfterTraffic_HoldNoPipes()
    {
        Assert.SkipUnless(ConnectionPump.ZeroCopyAvailable, "splice(2) is Linux only");
        const int streams = 200;
        const int poolCapacity = 4;
        using var pool = new SplicePipePool(SplicePipePool.DefaultPipeSize, poolCapacity);
        var before = OpenPipes();
        var hops = new List<(Socket Client, Socket Node, Task<PumpResult> Pump)>();
        try
        {
            for (var i = 0; i < streams; i++)
            {
                var (client, near) = await SplicePumpTests.PairAsync();
                var (far, node) = await SplicePumpTests.PairAsync();
                hops.Add((client, node, ConnectionPump.RunAsync(new RawConnection(near), new RawConnection(far), PumpDirection.PublicSide, null, null, pool, CancellationToken.None)));
            }

            // Every direction of every stream moves bytes (takes a pipe), then all go idle.
            var one = new byte[1];
            foreach (var (client, node, _) in hops)
            {
                await client.SendAsync("u"u8.ToArray().AsMemory()).AsTask().Within();
                Assert.Equal(1, await node.ReceiveAsync(one.AsMemory()).AsTask().Within());
                await node.SendAsync("d"u8.ToArray().AsMemory()).AsTask().Within();
                Assert.Equal(1, await client.ReceiveAsync(one.AsMemory()).AsTask().Within());
            }

            // A direction gives its pipe back right after its splice finds the input empty, which follows the delivery
            // the test just saw; give those last few returns a moment.
            var sw = Stopwatch.StartNew();
            var during = OpenPipes();
            while (during - before > 2 * poolCapacity && sw.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20));
                during = OpenPipes();
            }

            // Held per idle direction this would be 200 streams x 2 directions x 2 descriptors = 800.
            Assert.True(during - before <= 2 * poolCapacity, $"{during - before} pipe descriptors open for {streams} idle streams");
            Assert.True(pool.IdleCount > 0);
        }
        finally
        {
            foreach (var (client, node, pump) in hops)
            {
                client.Dispose();
                node.Dispose();
                await pump.Within();
            }
        }

        pool.Dispose();
        Assert.Equal(before, OpenPipes());
    }
}
