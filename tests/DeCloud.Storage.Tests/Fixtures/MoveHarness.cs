using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using DeCloud.Storage.Moves;

namespace DeCloud.Storage.Tests.Fixtures;

/// <summary>
/// A destination host on loopback TCP (port 0): every accepted connection is served by a
/// <see cref="VolumeReceiver"/>. Connections from <see cref="ConnectAsync"/> may be wrapped to
/// inject faults; each connection's written bytes are recorded.
/// </summary>
public sealed class MoveHarness : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;
    private readonly ConcurrentQueue<Task> _sessions = new();
    private readonly Func<VolumeReceiver> _newReceiver;

    public MoveHarness(BtrfsVolumes destination, VolumeReceiverOptions? options = null, Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        _newReceiver = () => new VolumeReceiver(destination, options, loggerFactory, timeProvider);
        Receiver = _newReceiver();
        _listener.Start();
        _accept = AcceptLoopAsync();
    }

    /// <summary>The receiver serving new connections (replaced by <see cref="RestartReceiverAsync"/>).</summary>
    public VolumeReceiver Receiver { get; private set; }

    /// <summary>
    /// The destination process restarts: the running receiver is disposed (its live receives end, staged
    /// chunks stay on disk) and a new one with the same options serves the next connections.
    /// </summary>
    public async Task RestartReceiverAsync()
    {
        var old = Receiver;
        Receiver = _newReceiver();
        await old.DisposeAsync();
    }

    /// <summary>Wraps the n-th client connection (0-based); null leaves it plain.</summary>
    public Func<int, Stream, Stream>? WrapClient { get; set; }

    /// <summary>Wraps the server side of the n-th accepted connection, with a token that cancels its session.</summary>
    public Func<int, Stream, CancellationTokenSource, Stream>? WrapServer { get; set; }

    public List<CountingStream> ClientStreams { get; } = [];

    public ConcurrentQueue<Exception> ServerErrors { get; } = new();

    private int _accepted;

    public async ValueTask<Stream> ConnectAsync(CancellationToken cancellationToken)
    {
        var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync((IPEndPoint)_listener.LocalEndpoint, cancellationToken);
        Stream stream = client.GetStream();
        var index = ClientStreams.Count;
        var counting = new CountingStream(WrapClient?.Invoke(index, stream) ?? stream, client);
        ClientStreams.Add(counting);
        return counting;
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            client.NoDelay = true;
            var n = _accepted++;
            var receiver = Receiver;
            _sessions.Enqueue(Task.Run(async () =>
            {
                using var c = client;
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                Stream stream = c.GetStream();
                if (WrapServer is { } wrap)
                {
                    stream = wrap(n, stream, cts);
                }

                try
                {
                    await receiver.ServeAsync(stream, cts.Token);
                }
                catch (Exception ex)
                {
                    ServerErrors.Enqueue(ex);
                }
            }));
        }
    }

    /// <summary>Waits for the <paramref name="index"/>-th accepted connection's session (0-based, accepted already) to end.</summary>
    public Task SessionEndedAsync(int index) => _sessions.ToArray()[index];

    /// <summary>Waits for every server session to end (they end when the client closes).</summary>
    public async Task DrainAsync()
    {
        foreach (var s in _sessions)
        {
            await s.WaitAsync(TimeSpan.FromMinutes(1));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accept;
        foreach (var s in _sessions)
        {
            await s.WaitAsync(TimeSpan.FromMinutes(1));
        }

        await Receiver.DisposeAsync();
        _stop.Dispose();
    }
}

/// <summary>Counts bytes written through a stream; disposing closes the socket too.</summary>
public sealed class CountingStream(Stream inner, TcpClient? owner) : Stream
{
    public long Written { get; private set; }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await inner.WriteAsync(buffer, cancellationToken);
        Written += buffer.Length;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
            owner?.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// Injects faults into writes: breaks the connection after a byte budget (the write that crosses it is
/// dropped whole, so the peer sees whole frames, or with <paramref name="tear"/> sent up to the budget, so
/// the peer sees a frame cut in the middle), or flips a byte in the n-th large write.
/// </summary>
public sealed class FaultStream(Stream inner, long breakAfterBytes = long.MaxValue, int corruptLargeWrite = -1, bool tear = false) : Stream
{
    private long _written;
    private int _largeWrites;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_written + buffer.Length > breakAfterBytes)
        {
            if (tear && breakAfterBytes > _written)
            {
                await inner.WriteAsync(buffer[..(int)(breakAfterBytes - _written)], cancellationToken);
                await inner.FlushAsync(cancellationToken);
            }

            inner.Dispose();
            throw new IOException("injected connection loss");
        }

        if (buffer.Length > 4096 && _largeWrites++ == corruptLargeWrite)
        {
            var copy = buffer.ToArray();
            copy[100] ^= 0x5A;
            buffer = copy;
        }

        await inner.WriteAsync(buffer, cancellationToken);
        _written += buffer.Length;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>A server-side stream that cancels its session once it has read a byte budget (a killed receiver).</summary>
public sealed class KillAfterReadStream(Stream inner, long budget, CancellationTokenSource kill) : Stream
{
    private long _read;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken);
        _read += n;
        if (_read > budget)
        {
            await kill.CancelAsync();
            cancellationToken.ThrowIfCancellationRequested();
        }

        return n;
    }
}

public static class TreeData
{
    public static void WriteRandomFile(string path, int bytes, int seed)
    {
        var data = new byte[bytes];
        new Random(seed).NextBytes(data);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, data);
    }

    /// <summary>Relative path -> SHA-256 of content (files), "dir", or "link:target".</summary>
    public static SortedDictionary<string, string> Hashes(string root)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            var rel = Path.GetRelativePath(root, entry);
            var info = new FileInfo(entry);
            result[rel] = info.LinkTarget is { } t ? "link:" + t
                : info.Attributes.HasFlag(FileAttributes.Directory) ? "dir"
                : Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(entry)));
        }

        return result;
    }
}
