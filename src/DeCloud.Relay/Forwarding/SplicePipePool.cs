using DeCloud.Relay.Interop;

namespace DeCloud.Relay.Forwarding;

/// <summary>
/// A kernel pipe one direction of a zero-copy pump moves bytes through (socket -> pipe -> socket). Pages are passed
/// by reference, never copied into user space. <see cref="Buffered"/> is what the pump spliced in and not yet out.
/// </summary>
internal sealed class SplicePipe(SafeFileDescriptor readEnd, SafeFileDescriptor writeEnd, int capacity) : IDisposable
{
    public SafeFileDescriptor ReadEnd { get; } = readEnd;

    public SafeFileDescriptor WriteEnd { get; } = writeEnd;

    /// <summary>The pipe's size in bytes as the kernel set it.</summary>
    public int Capacity { get; } = capacity;

    /// <summary>Bytes in the pipe: spliced in and not yet spliced or read out.</summary>
    public int Buffered { get; set; }

    public void Dispose()
    {
        ReadEnd.Dispose();
        WriteEnd.Dispose();
    }
}

/// <summary>
/// Pipes for the zero-copy pump. A direction takes one only while its bytes flow and gives it back when its input has
/// nothing queued, so idle streams hold no pipe (10,000 idle streams cost no extra descriptors); a small bounded
/// number of empty pipes is kept for the next burst, the rest are closed. A pipe that still holds bytes is never
/// pooled.
/// </summary>
internal sealed class SplicePipePool(int pipeSize, int capacity) : IDisposable
{
    /// <summary>
    /// Pipe size: 256 KiB. Measured on loopback with 16 streams (benchmarks/README.md, relay): CPU time per GB of the
    /// relay and node processes, median of 4 runs under heavy machine load, 0.98 s with 64 KiB pipes (the kernel
    /// default), 0.91 s with 256 KiB, 0.80 s with 1 MiB. 1 MiB is not the default because a stream whose reader stalls
    /// keeps a full pipe pinned at each hop: 256 KiB bounds that at twice the copy path's 128 KiB buffer (with 1 MiB the
    /// relay's never-reading-client test saw a 64 MiB flood absorbed end to end instead of held back).
    /// </summary>
    public const int DefaultPipeSize = 256 * 1024;

    private readonly Lock _lock = new();
    private readonly Stack<SplicePipe> _idle = new();
    private bool _disposed;

    /// <summary>The process-wide pool: up to 4 idle pipes per processor (at least 16).</summary>
    public static SplicePipePool Shared { get; } = new(DefaultPipeSize, Math.Max(16, 4 * Environment.ProcessorCount));

    public int PipeSize { get; } = pipeSize;

    /// <summary>Most empty pipes kept.</summary>
    public int Capacity { get; } = capacity;

    /// <summary>Empty pipes kept now.</summary>
    public int IdleCount
    {
        get
        {
            lock (_lock)
            {
                return _idle.Count;
            }
        }
    }

    /// <summary>An empty pipe, pooled or new; null with <paramref name="errno"/> when the process cannot open one (EMFILE, ENFILE).</summary>
    public SplicePipe? Rent(out int errno)
    {
        lock (_lock)
        {
            if (_idle.TryPop(out var pooled))
            {
                errno = 0;
                return pooled;
            }
        }

        if (!LinuxSplice.TryCreatePipe(PipeSize, out var readEnd, out var writeEnd, out var size, out errno))
        {
            return null;
        }

        return new SplicePipe(readEnd, writeEnd, size);
    }

    /// <summary>Keeps an empty pipe for the next burst while there is room; closes it otherwise, or if it holds bytes.</summary>
    public void Return(SplicePipe pipe)
    {
        if (pipe.Buffered == 0)
        {
            lock (_lock)
            {
                if (!_disposed && _idle.Count < Capacity)
                {
                    _idle.Push(pipe);
                    return;
                }
            }
        }

        pipe.Dispose();
    }

    /// <summary>Closes the pooled pipes; pipes rented now are closed when returned.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            while (_idle.TryPop(out var pipe))
            {
                pipe.Dispose();
            }
        }
    }
}
