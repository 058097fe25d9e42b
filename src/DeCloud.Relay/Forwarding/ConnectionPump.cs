using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;
using DeCloud.Relay.Diagnostics;
using DeCloud.Relay.Interop;

namespace DeCloud.Relay.Forwarding;

/// <summary>One end of a raw byte path: a socket and the stream over it (a <see cref="NetworkStream"/>, or TLS on top).</summary>
internal sealed class RawConnection(Socket socket, Stream stream) : IAsyncDisposable
{
    /// <summary>Wraps a plain socket; the stream owns it.</summary>
    public RawConnection(Socket socket)
        : this(socket, new NetworkStream(socket, ownsSocket: true))
    {
    }

    public Socket Socket { get; } = socket;

    public Stream Stream { get; } = stream;

    /// <summary>
    /// Whether the pump may move this connection's bytes with <c>splice(2)</c> (Linux, plain TCP on both ends). Set from
    /// <see cref="RelayServerOptions.UseZeroCopy"/> / <see cref="RelayClientOptions.UseZeroCopy"/> on data connections.
    /// </summary>
    public bool AllowZeroCopy { get; init; } = true;

    /// <summary>Plain TCP under a <see cref="NetworkStream"/> (no TLS, no buffering layer): its bytes can be spliced at the socket.</summary>
    public bool IsPlainSocket => Stream.GetType() == typeof(NetworkStream) && Socket.SocketType == SocketType.Stream;

    /// <summary>Ends our sending direction: TLS close_notify, or a TCP FIN. The peer may keep sending.</summary>
    public async ValueTask ShutdownWriteAsync()
    {
        if (Stream is SslStream ssl)
        {
            await ssl.ShutdownAsync().ConfigureAwait(false);
        }
        else
        {
            Socket.Shutdown(SocketShutdown.Send);
        }
    }

    /// <summary>Closes with a reset, so the peer learns of the failure instead of seeing a clean end.</summary>
    public void Abort()
    {
        try
        {
            Socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        Socket.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Stream.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
        }

        Socket.Dispose();
    }
}

/// <summary>
/// Copies raw bytes between two connections (a public client or target socket, and a dedicated data connection) in
/// both directions at once. On Linux, between two plain TCP sockets, bytes move socket -> pipe -> socket with
/// <c>splice(2)</c> and never enter user space (as HAProxy does); otherwise (TLS, other platforms, a socket pair the
/// kernel cannot splice, zero-copy turned off) through large pooled buffers. Either way a direction holds a buffer or
/// a pipe only while data flows (zero-byte reads while idle), a clean end of one direction half-closes the other
/// connection, and the first failure resets both and is the result.
/// </summary>
internal static class ConnectionPump
{
    /// <summary>Bytes moved per read; large enough that a loopback stream costs few system calls per megabyte.</summary>
    public const int BufferSize = 128 * 1024;

    /// <summary>
    /// When the output socket is full, this many bytes at most leave the pipe through a buffer and an awaited send,
    /// which waits for room the way every .NET socket write does (no polling, no blocked thread); splicing resumes
    /// when it completes.
    /// </summary>
    public const int WritabilityProbeSize = 4 * 1024;

    /// <summary>Set once <c>splice(2)</c> reported ENOSYS (kernel without it, or a seccomp filter): every later pump copies.</summary>
    private static volatile bool s_spliceUnavailable;

    /// <summary>Whether the zero-copy path can be used in this process at all (Linux x64/arm64, splice not refused).</summary>
    public static bool ZeroCopyAvailable => LinuxSplice.IsSupported && !s_spliceUnavailable;

    /// <summary>
    /// Pumps until both directions end. <paramref name="near"/> failing gives <see cref="PumpResult.SocketFailed"/>,
    /// <paramref name="far"/> (the data connection) failing gives <see cref="PumpResult.TunnelFailed"/>. Both connections are disposed.
    /// </summary>
    public static Task<PumpResult> RunAsync(
        RawConnection near, RawConnection far, PumpDirection side, TokenBucket? nearToFarLimit, TokenBucket? farToNearLimit,
        CancellationToken cancellationToken) =>
        RunAsync(near, far, side, nearToFarLimit, farToNearLimit, SplicePipePool.Shared, cancellationToken);

    /// <summary>As above, taking pipes from <paramref name="pipes"/>; null always copies through buffers.</summary>
    public static async Task<PumpResult> RunAsync(
        RawConnection near, RawConnection far, PumpDirection side, TokenBucket? nearToFarLimit, TokenBucket? farToNearLimit,
        SplicePipePool? pipes, CancellationToken cancellationToken)
    {
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var upTag = new KeyValuePair<string, object?>("direction", side == PumpDirection.PublicSide ? "inbound" : "outbound");
        var downTag = new KeyValuePair<string, object?>("direction", side == PumpDirection.PublicSide ? "outbound" : "inbound");
        Task<PumpResult> up, down;
        if (pipes is not null && CanSplice(near, far))
        {
            up = SpliceAsync(near, far, pipes, nearToFarLimit, upTag, PumpResult.SocketFailed, PumpResult.TunnelFailed, abort.Token);
            down = SpliceAsync(far, near, pipes, farToNearLimit, downTag, PumpResult.TunnelFailed, PumpResult.SocketFailed, abort.Token);
        }
        else
        {
            up = CopyAsync(near, far, nearToFarLimit, upTag, PumpResult.SocketFailed, PumpResult.TunnelFailed, abort.Token);
            down = CopyAsync(far, near, farToNearLimit, downTag, PumpResult.TunnelFailed, PumpResult.SocketFailed, abort.Token);
        }

        var first = await Task.WhenAny(up, down).ConfigureAwait(false);
        var firstResult = await first.ConfigureAwait(false);
        if (firstResult != PumpResult.Completed)
        {
            Abort(near, far, abort);
        }

        var secondResult = await (first == up ? down : up).ConfigureAwait(false);
        if (secondResult != PumpResult.Completed)
        {
            Abort(near, far, abort);
        }

        await near.DisposeAsync().ConfigureAwait(false);
        await far.DisposeAsync().ConfigureAwait(false);
        return firstResult != PumpResult.Completed ? firstResult : secondResult;
    }

    private static bool CanSplice(RawConnection near, RawConnection far)
    {
        if (!ZeroCopyAvailable || !near.AllowZeroCopy || !far.AllowZeroCopy || !near.IsPlainSocket || !far.IsPlainSocket)
        {
            return false;
        }

        try
        {
            // .NET makes a socket non-blocking with its first asynchronous operation; make sure, since a splice on a
            // blocking socket would block a thread-pool thread.
            return LinuxSplice.TryEnsureNonBlocking(near.Socket.SafeHandle) && LinuxSplice.TryEnsureNonBlocking(far.Socket.SafeHandle);
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    private static void Abort(RawConnection near, RawConnection far, CancellationTokenSource abort)
    {
        near.Abort();
        far.Abort();
        try
        {
            abort.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static async Task<PumpResult> CopyAsync(
        RawConnection from, RawConnection to, TokenBucket? limit, KeyValuePair<string, object?> tag, PumpResult readFailed, PumpResult writeFailed,
        CancellationToken cancellationToken)
    {
        byte[]? buffer = null;
        var writing = false;
        try
        {
            while (true)
            {
                writing = false;
                if (buffer is null)
                {
                    // Idle: wait for data without holding a buffer, so thousands of idle streams cost little memory.
                    await from.Stream.ReadAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
                    buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                }

                var read = await from.Stream.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken).ConfigureAwait(false);
                writing = true;
                if (read == 0)
                {
                    await to.ShutdownWriteAsync().ConfigureAwait(false);
                    return PumpResult.Completed;
                }

                if (limit is not null)
                {
                    await limit.WaitAsync(read, cancellationToken).ConfigureAwait(false);
                }

                await to.Stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                RelayMetrics.Bytes.Add(read, tag);
                // Keep the buffer (and skip the zero-byte wait) while more bytes are already queued in the kernel:
                // a busy stream then costs one read and one write per buffer, an idle one holds no buffer.
                if (read < BufferSize && from.Socket.Available == 0)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = null;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return PumpResult.Canceled;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            return writing ? writeFailed : readFailed;
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>
    /// One direction through a kernel pipe: wait (zero-byte receive, no pipe held) until the input is readable, take a
    /// pipe, splice socket -> pipe (at most what the rate limit allows), splice pipe -> socket until the pipe is empty,
    /// repeat until the input has nothing queued, then give the pipe back. A full output socket is waited for by moving
    /// the next few bytes with an awaited send.
    /// </summary>
    private static async Task<PumpResult> SpliceAsync(
        RawConnection from, RawConnection to, SplicePipePool pipes, TokenBucket? limit, KeyValuePair<string, object?> tag, PumpResult readFailed,
        PumpResult writeFailed, CancellationToken cancellationToken)
    {
        SplicePipe? pipe = null;
        byte[]? probe = null;
        var writing = false;
        var spliced = false;
        try
        {
            var input = from.Socket.SafeHandle;
            var output = to.Socket.SafeHandle;
            while (true)
            {
                writing = false;
                if (pipe is null)
                {
                    await from.Socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    pipe = pipes.Rent(out _);
                    if (pipe is null)
                    {
                        // Out of descriptors: this direction still works, through buffers.
                        return await CopyAsync(from, to, limit, tag, readFailed, writeFailed, cancellationToken).ConfigureAwait(false);
                    }
                }

                cancellationToken.ThrowIfCancellationRequested();
                var want = limit is null ? pipe.Capacity : (int)Math.Min(pipe.Capacity, limit.Burst);
                var moved = LinuxSplice.Splice(input, pipe.WriteEnd, want, out var errno);
                if (moved < 0)
                {
                    if (errno == LinuxSplice.EAgain)
                    {
                        // Nothing queued: idle again, holding no pipe.
                        pipes.Return(pipe);
                        pipe = null;
                        continue;
                    }

                    if (!spliced && IsUnsupported(errno))
                    {
                        pipes.Return(pipe);
                        pipe = null;
                        return await CopyAsync(from, to, limit, tag, readFailed, writeFailed, cancellationToken).ConfigureAwait(false);
                    }

                    return readFailed;
                }

                writing = true;
                if (moved == 0)
                {
                    await to.ShutdownWriteAsync().ConfigureAwait(false);
                    return PumpResult.Completed;
                }

                pipe.Buffered += (int)moved;
                if (limit is not null)
                {
                    await limit.WaitAsync((int)moved, cancellationToken).ConfigureAwait(false);
                }

                var copyOut = false;
                while (pipe.Buffered > 0)
                {
                    if (!copyOut)
                    {
                        var sent = LinuxSplice.Splice(pipe.ReadEnd, output, pipe.Buffered, out errno);
                        if (sent > 0)
                        {
                            spliced = true;
                            pipe.Buffered -= (int)sent;
                            RelayMetrics.Bytes.Add(sent, tag);
                            continue;
                        }

                        if (sent == 0)
                        {
                            return writeFailed;
                        }

                        if (errno != LinuxSplice.EAgain)
                        {
                            if (spliced || !IsUnsupported(errno))
                            {
                                return writeFailed;
                            }

                            // This output cannot take spliced pages: empty the pipe through the buffer, then copy.
                            copyOut = true;
                        }
                    }

                    // The output is full (or cannot take spliced pages): the next bytes go through a small buffer and an
                    // awaited send, which waits for room without a blocked thread or a polling loop.
                    probe ??= ArrayPool<byte>.Shared.Rent(copyOut ? BufferSize : WritabilityProbeSize);
                    var read = LinuxSplice.Read(pipe.ReadEnd, probe.AsSpan(0, Math.Min(pipe.Buffered, probe.Length)), out _);
                    if (read <= 0)
                    {
                        return writeFailed;
                    }

                    pipe.Buffered -= read;
                    await to.Socket.SendAsync(probe.AsMemory(0, read), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    RelayMetrics.Bytes.Add(read, tag);
                }

                if (copyOut)
                {
                    pipes.Return(pipe);
                    pipe = null;
                    return await CopyAsync(from, to, limit, tag, readFailed, writeFailed, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return PumpResult.Canceled;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            return writing ? writeFailed : readFailed;
        }
        finally
        {
            if (pipe is not null)
            {
                // Closed rather than pooled if bytes are left in it.
                pipes.Return(pipe);
            }

            if (probe is not null)
            {
                ArrayPool<byte>.Shared.Return(probe);
            }
        }
    }

    /// <summary>The kernel cannot splice this pair (EINVAL, EOPNOTSUPP) or at all (ENOSYS; remembered for the process).</summary>
    private static bool IsUnsupported(int errno)
    {
        if (errno == LinuxSplice.ENoSys)
        {
            s_spliceUnavailable = true;
            return true;
        }

        return errno is LinuxSplice.EInval or LinuxSplice.EOpNotSupp;
    }
}
