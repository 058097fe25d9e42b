using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using DeCloud.Testing;

namespace DeCloud.Relay.Tests.EndToEnd;

/// <summary>
/// The multiplexed data path under the load that reset healthy streams in <c>quick relay</c>: many streams moving
/// bytes both ways (some reading slowly), while other clients and targets reset their connections mid-transfer (so
/// streams are aborted while DATA frames for them are still arriving) and busy threads starve the CPU. Every healthy
/// stream must end cleanly and byte-exact, and the tunnel must never drop.
/// </summary>
public sealed class MultiplexedStressTests
{
    private const int HealthyStreams = 16;
    private const int TransferBytes = 2 * 1024 * 1024;
    private const int Victims = 240;
    private const int VictimBatch = 8;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Multiplexed_StreamsResetAroundHealthyOnesUnderCpuStarvation_HealthyStreamsEndCleanAndExact(bool tls)
    {
        using var certificate = tls ? TlsTests.CreateCertificate() : null;
        await using var harness = await RelayHarness.StartAsync(o => o.Certificate = certificate, RelayStreamTransport.Multiplexed);
        await using var target = new PatternTarget();
        var client = await harness.StartClientAsync(configure: o =>
        {
            o.UseTls = tls;
            o.PinnedCertificateSha256 = certificate?.GetCertHashString(HashAlgorithmName.SHA256);
        });
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", target.Port)).Within();

        using var stop = new CancellationTokenSource();
        var busy = Enumerable.Range(0, Environment.ProcessorCount).Select(_ => Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                Thread.SpinWait(1000);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        try
        {
            var healthy = Enumerable.Range(1, HealthyStreams).Select(seed => HealthyStreamAsync(mapping.PublicPort, seed, slowReader: seed % 2 == 0)).ToArray();
            var victims = VictimsAsync(mapping.PublicPort);
            await Task.WhenAll([.. healthy, victims]).Within(TimeSpan.FromSeconds(100), "the streams");
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(busy).Within();
        }

        for (var seed = 1; seed <= HealthyStreams; seed++)
        {
            Assert.True(target.Results.TryGetValue(seed, out var result), $"the target saw no end of stream {seed}");
            Assert.Equal("ok", result);
        }

        Assert.Equal(1, client.ConnectCount);
        Assert.True(client.IsConnected);
    }

    /// <summary>Uploads and downloads <see cref="TransferBytes"/> at once, checking every downloaded byte and a clean end.</summary>
    private static async Task HealthyStreamAsync(int port, int seed, bool slowReader)
    {
        using var socket = await Net.ConnectAsync(port);
        await socket.SendAsync(PatternTarget.Header(seed, TransferBytes, TransferBytes, resetAfter: 0));
        var upload = Task.Run(async () =>
        {
            var chunk = new byte[48 * 1024];
            for (var sent = 0; sent < TransferBytes;)
            {
                var n = Math.Min(chunk.Length, TransferBytes - sent);
                PatternTarget.Fill(chunk.AsSpan(0, n), -seed, sent);
                await socket.SendAsync(chunk.AsMemory(0, n));
                sent += n;
            }

            socket.Shutdown(SocketShutdown.Send);
        });

        var buffer = new byte[16 * 1024];
        var expected = new byte[buffer.Length];
        long received = 0;
        var reads = 0;
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer);
            if (n == 0)
            {
                break;
            }

            PatternTarget.Fill(expected.AsSpan(0, n), seed, received);
            Assert.True(buffer.AsSpan(0, n).SequenceEqual(expected.AsSpan(0, n)), $"stream {seed}: bytes differ after offset {received}");
            received += n;
            if (slowReader && ++reads % 8 == 0)
            {
                await Task.Delay(1);
            }
        }

        await upload;
        Assert.Equal(TransferBytes, received);
    }

    /// <summary>
    /// Streams whose ends reset mid-transfer, a few at a time: public clients that reset while the node is still
    /// sending to them, and targets that reset while the relay is still sending to them.
    /// </summary>
    private static async Task VictimsAsync(int port)
    {
        var random = new Random(7);
        for (var i = 0; i < Victims; i += VictimBatch)
        {
            var batch = Enumerable.Range(i, VictimBatch).Select(v => v % 2 == 0
                ? ClientResetsAsync(port, 1000 + v, random.Next(64 * 1024, 1024 * 1024))
                : TargetResetsAsync(port, 1000 + v, random.Next(64 * 1024, 1024 * 1024)));
            await Task.WhenAll(batch);
        }
    }

    private static async Task ClientResetsAsync(int port, int seed, int after)
    {
        var socket = await Net.ConnectAsync(port);
        await socket.SendAsync(PatternTarget.Header(seed, 64 * 1024 * 1024, 0, resetAfter: 0));
        var buffer = new byte[64 * 1024];
        for (var received = 0; received < after;)
        {
            var n = await socket.ReceiveAsync(buffer);
            Assert.True(n > 0, $"victim {seed} ended before it reset");
            received += n;
        }

        socket.Close(0);
    }

    private static async Task TargetResetsAsync(int port, int seed, int after)
    {
        using var socket = await Net.ConnectAsync(port);
        await socket.SendAsync(PatternTarget.Header(seed, 0, 64 * 1024 * 1024, resetAfter: after));
        var chunk = new byte[64 * 1024];
        try
        {
            while (true)
            {
                await socket.SendAsync(chunk);
            }
        }
        catch (SocketException)
        {
            // The target reset the connection, passed on through the relay: what this victim is for.
        }
    }

    /// <summary>
    /// A target speaking a tiny test protocol: a 16-byte header (seed, bytes to send, bytes to expect, reset after N
    /// bytes received), then it sends and checks position-dependent pattern bytes at once and records how each ended.
    /// </summary>
    private sealed class PatternTarget : IAsyncDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;

        public PatternTarget()
        {
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(1024);
            Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
            _loop = AcceptAsync();
        }

        public int Port { get; }

        public ConcurrentDictionary<int, string> Results { get; } = new();

        public static byte[] Header(int seed, int send, int expect, int resetAfter)
        {
            var header = new byte[16];
            BinaryPrimitives.WriteInt32BigEndian(header, seed);
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), send);
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(8), expect);
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(12), resetAfter);
            return header;
        }

        /// <summary>The pattern byte at each stream offset: reordered, lost or repeated chunks never match.</summary>
        public static void Fill(Span<byte> destination, int seed, long offset)
        {
            for (var i = 0; i < destination.Length; i++)
            {
                var x = (ulong)(offset + i) * 0x9E3779B97F4A7C15UL ^ (ulong)seed;
                destination[i] = (byte)((x >> 29) ^ (x >> 47));
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Dispose();
            await _loop;
            _stop.Dispose();
        }

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    _ = ServeAsync(await _listener.AcceptAsync(_stop.Token));
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
                {
                    return;
                }
            }
        }

        private async Task ServeAsync(Socket socket)
        {
            using var _ = socket;
            var seed = 0;
            try
            {
                var header = new byte[16];
                for (var read = 0; read < header.Length;)
                {
                    var n = await socket.ReceiveAsync(header.AsMemory(read), _stop.Token);
                    if (n == 0)
                    {
                        return;
                    }

                    read += n;
                }

                seed = BinaryPrimitives.ReadInt32BigEndian(header);
                var send = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
                var expect = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(8));
                var resetAfter = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(12));
                var sending = SendAsync(socket, seed, send);
                var result = await ReceiveAsync(socket, seed, expect, resetAfter);
                if (result == "reset")
                {
                    socket.Close(0);
                    return;
                }

                await sending;
                socket.Shutdown(SocketShutdown.Send);
                Results[seed] = result;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                Results.TryAdd(seed, "failed: " + ex.Message);
            }
        }

        private async Task SendAsync(Socket socket, int seed, int send)
        {
            var chunk = new byte[40 * 1024];
            for (var sent = 0; sent < send;)
            {
                var n = Math.Min(chunk.Length, send - sent);
                Fill(chunk.AsSpan(0, n), seed, sent);
                await socket.SendAsync(chunk.AsMemory(0, n), _stop.Token);
                sent += n;
            }
        }

        private async Task<string> ReceiveAsync(Socket socket, int seed, int expect, int resetAfter)
        {
            var buffer = new byte[32 * 1024];
            var expected = new byte[buffer.Length];
            long received = 0;
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, _stop.Token);
                if (n == 0)
                {
                    return received == expect ? "ok" : $"ended after {received} of {expect} bytes";
                }

                if (resetAfter > 0 && received + n >= resetAfter)
                {
                    return "reset";
                }

                Fill(expected.AsSpan(0, n), -seed, received);
                if (!buffer.AsSpan(0, n).SequenceEqual(expected.AsSpan(0, n)))
                {
                    return $"bytes differ after offset {received}";
                }

                received += n;
            }
        }
    }
}
