using System.Net;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using DeCloud.Relay.Forwarding;

namespace DeCloud.Benchmarks.Relay;

/// <summary>
/// Moving 8 MiB from a client through one relay hop to a node over loopback: the relay's raw
/// <see cref="ConnectionPump"/> (the dedicated-connection data path), zero-copy (splice) and copying, against the
/// baseline a .NET developer writes first, <see cref="Stream.CopyToAsync(Stream)"/> in each direction. One operation
/// = one whole transfer, half-close passed on and both pumps finished.
/// </summary>
[MemoryDiagnoser]
public class RelayPumpBenchmarks : IDisposable
{
    private readonly LoopbackHop _hop = new();

    [GlobalSetup]
    public void Setup() => _hop.Start();

    [GlobalCleanup]
    public void Dispose()
    {
        _hop.Dispose();
        GC.SuppressFinalize(this);
    }

    [Benchmark(Baseline = true)]
    public Task<long> CopyToAsyncBothWays() => _hop.TransferAsync(static async (near, far) =>
    {
        var up = CopyAndShutdownAsync(near, far);
        var down = CopyAndShutdownAsync(far, near);
        await Task.WhenAll(up, down);
        await near.DisposeAsync();
        await far.DisposeAsync();
    });

    /// <summary>The pump's copy path (128 KiB pooled buffers): TLS, other platforms, <c>UseZeroCopy = false</c>.</summary>
    [Benchmark]
    public Task<long> ConnectionPumpCopy() => _hop.TransferAsync(static (near, far) =>
        ConnectionPump.RunAsync(near, far, PumpDirection.PublicSide, null, null, pipes: null, CancellationToken.None));

    /// <summary>The pump's zero-copy path on Linux: splice socket -> pipe -> socket (the default for plain TCP).</summary>
    [Benchmark]
    public Task<long> ConnectionPumpSplice() => _hop.TransferAsync(static (near, far) =>
        ConnectionPump.RunAsync(near, far, PumpDirection.PublicSide, null, null, SplicePipePool.Shared, CancellationToken.None));

    private static async Task CopyAndShutdownAsync(RawConnection from, RawConnection to)
    {
        await from.Stream.CopyToAsync(to.Stream);
        to.Socket.Shutdown(SocketShutdown.Send);
    }
}

/// <summary>
/// The zero-copy pump's pipe size (<c>F_SETPIPE_SZ</c>): the same 8 MiB one-hop transfer through pipes of 64 KiB (the
/// kernel default), 256 KiB (the pool's default) and 1 MiB (the unprivileged maximum).
/// </summary>
[MemoryDiagnoser]
public class RelaySplicePipeSizeBenchmarks : IDisposable
{
    private readonly LoopbackHop _hop = new();
    private SplicePipePool? _pool;

    [Params(64 * 1024, 256 * 1024, 1024 * 1024)]
    public int PipeSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _hop.Start();
        _pool = new SplicePipePool(PipeSize, 16);
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _hop.Dispose();
        _pool?.Dispose();
        GC.SuppressFinalize(this);
    }

    [Benchmark]
    public Task<long> ConnectionPumpSplice() => _hop.TransferAsync((near, far) =>
        ConnectionPump.RunAsync(near, far, PumpDirection.PublicSide, null, null, _pool, CancellationToken.None));
}

/// <summary>client -> near | pump | far -> node on loopback: sends 8 MiB from the client, counts what reaches the node.</summary>
internal sealed class LoopbackHop : IDisposable
{
    private const int Size = 8 * 1024 * 1024;
    private readonly byte[] _payload = new byte[Size];
    private readonly byte[] _sink = new byte[256 * 1024];
    private Socket? _listener;

    public void Start()
    {
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(16);
    }

    public void Dispose() => _listener?.Dispose();

    public async Task<long> TransferAsync(Func<RawConnection, RawConnection, Task> pump)
    {
        var (client, near) = await PairAsync();
        var (far, node) = await PairAsync();
        using (client)
        using (node)
        {
            var relay = pump(new RawConnection(near), new RawConnection(far));
            var send = SendAllAsync(client);
            long received = 0;
            int n;
            while ((n = await node.ReceiveAsync(_sink)) > 0)
            {
                received += n;
            }

            node.Shutdown(SocketShutdown.Send);
            await send;
            await relay;
            return received;
        }
    }

    private async Task SendAllAsync(Socket client)
    {
        await client.SendAsync(_payload);
        client.Shutdown(SocketShutdown.Send);
    }

    private async Task<(Socket Outer, Socket Inner)> PairAsync()
    {
        var outer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accept = _listener!.AcceptAsync();
        await outer.ConnectAsync(_listener.LocalEndPoint!);
        return (outer, await accept);
    }
}
