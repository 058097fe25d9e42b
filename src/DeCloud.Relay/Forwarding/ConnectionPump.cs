using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;
using DeCloud.Relay.Diagnostics;

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
/// both directions at once: large pooled buffers held only while data flows (zero-byte reads while idle), a clean end
/// of one direction half-closes the other connection, and the first failure resets both and is the result.
/// </summary>
internal static class ConnectionPump
{
    /// <summary>Bytes moved per read; large enough that a loopback stream costs few system calls per megabyte.</summary>
    public const int BufferSize = 128 * 1024;

    /// <summary>
    /// Pumps until both directions end. <paramref name="near"/> failing gives <see cref="PumpResult.SocketFailed"/>,
    /// <paramref name="far"/> (the data connection) failing gives <see cref="PumpResult.TunnelFailed"/>. Both connections are disposed.
    /// </summary>
    public static async Task<PumpResult> RunAsync(
        RawConnection near, RawConnection far, PumpDirection side, TokenBucket? nearToFarLimit, TokenBucket? farToNearLimit,
        CancellationToken cancellationToken)
    {
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var upTag = new KeyValuePair<string, object?>("direction", side == PumpDirection.PublicSide ? "inbound" : "outbound");
        var downTag = new KeyValuePair<string, object?>("direction", side == PumpDirection.PublicSide ? "outbound" : "inbound");
        var up = CopyAsync(near, far, nearToFarLimit, upTag, PumpResult.SocketFailed, PumpResult.TunnelFailed, abort.Token);
        var down = CopyAsync(far, near, farToNearLimit, downTag, PumpResult.TunnelFailed, PumpResult.SocketFailed, abort.Token);
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
}
