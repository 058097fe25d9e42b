using System.Buffers;
using System.Net.Sockets;
using DeCloud.Relay.Diagnostics;
using DeCloud.Relay.Protocol;
using DeCloud.Relay.Tunnel;

namespace DeCloud.Relay.Forwarding;

/// <summary>How a pump ended: the first failure wins.</summary>
internal enum PumpResult
{
    /// <summary>Both sides finished cleanly (each half-closed after the other).</summary>
    Completed,

    /// <summary>The socket side failed (reset, refused, aborted).</summary>
    SocketFailed,

    /// <summary>The tunnel side failed (stream reset, tunnel lost).</summary>
    TunnelFailed,

    /// <summary>The caller cancelled.</summary>
    Canceled,
}

/// <summary>Which way bytes are counted in metrics, seen from the public client.</summary>
internal enum PumpDirection
{
    /// <summary>The socket is the public client (relay side): socket-to-tunnel is inbound.</summary>
    PublicSide,

    /// <summary>The socket is the target (node side): socket-to-tunnel is outbound.</summary>
    TargetSide,
}

/// <summary>
/// Copies bytes between a socket and a tunnel stream in two directions, YARP style: pooled buffers
/// released while idle (zero-byte reads), a clean end of one direction half-closes the other side,
/// and the first failure aborts both and is the result.
/// </summary>
internal static class StreamPump
{
    private const int BufferSize = 64 * 1024;

    public static async Task<PumpResult> RunAsync(
        Socket socket, TunnelStream stream, PumpDirection side, TokenBucket? socketToTunnelLimit, TokenBucket? tunnelToSocketLimit,
        CancellationToken cancellationToken)
    {
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var upTag = new KeyValuePair<string, object?>("direction", side == PumpDirection.PublicSide ? "inbound" : "outbound");
        var downTag = new KeyValuePair<string, object?>("direction", side == PumpDirection.PublicSide ? "outbound" : "inbound");
        var up = SocketToTunnelAsync(socket, stream, side, socketToTunnelLimit, upTag, abort.Token);
        var down = TunnelToSocketAsync(socket, stream, side, tunnelToSocketLimit, downTag, abort.Token);
        var first = await Task.WhenAny(up, down).ConfigureAwait(false);
        var firstEnd = await first.ConfigureAwait(false);
        if (firstEnd.Result != PumpResult.Completed)
        {
            Abort(socket, stream, abort, firstEnd);
        }

        var secondEnd = await (first == up ? down : up).ConfigureAwait(false);
        if (secondEnd.Result != PumpResult.Completed)
        {
            Abort(socket, stream, abort, secondEnd);
        }

        await stream.Input.CompleteAsync().ConfigureAwait(false);
        socket.Dispose();
        return firstEnd.Result != PumpResult.Completed ? firstEnd.Result : secondEnd.Result;
    }

    /// <summary>How one direction ended, and why when it failed (the reason the stream is reset with).</summary>
    private readonly record struct PumpEnd(PumpResult Result, string? Reason = null)
    {
        public static readonly PumpEnd Completed = new(PumpResult.Completed);

        public static PumpEnd SocketFailed(PumpDirection side, string operation, Exception ex) =>
            new(PumpResult.SocketFailed, $"the {(side == PumpDirection.PublicSide ? "public client's" : "target's")} connection failed while {operation}: {ex.Message}");
    }

    private static void Abort(Socket socket, TunnelStream stream, CancellationTokenSource abort, PumpEnd end)
    {
        // Only the first failure resets the stream (later ones find it failed): a socket failure says which end and why;
        // a tunnel failure means the stream already failed (reset by the peer, or the tunnel closed), so nothing is sent.
        stream.Abort(end.Result == PumpResult.SocketFailed ? WireError.SocketFailed : WireError.StreamAborted, end.Reason ?? end.Result.ToString());
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        socket.Dispose();
        abort.Cancel();
    }

    private static async Task<PumpEnd> SocketToTunnelAsync(Socket socket, TunnelStream stream, PumpDirection side, TokenBucket? limit, KeyValuePair<string, object?> tag, CancellationToken cancellationToken)
    {
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                if (buffer is null)
                {
                    // Idle: wait for data without holding a buffer, so thousands of idle streams cost little memory.
                    await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                }

                var read = await socket.ReceiveAsync(buffer.AsMemory(0, BufferSize), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    await stream.CompleteWritesAsync(cancellationToken).ConfigureAwait(false);
                    return PumpEnd.Completed;
                }

                if (limit is not null)
                {
                    await limit.WaitAsync(read, cancellationToken).ConfigureAwait(false);
                }

                await stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                RelayMetrics.Bytes.Add(read, tag);
                if (read < BufferSize)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = null;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return new PumpEnd(PumpResult.Canceled, "the pump was stopped");
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            return PumpEnd.SocketFailed(side, "reading", ex);
        }
        catch (RelayException ex)
        {
            return new PumpEnd(PumpResult.TunnelFailed, ex.Message);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private static async Task<PumpEnd> TunnelToSocketAsync(Socket socket, TunnelStream stream, PumpDirection side, TokenBucket? limit, KeyValuePair<string, object?> tag, CancellationToken cancellationToken)
    {
        var input = stream.Input;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    if (limit is not null)
                    {
                        await limit.WaitAsync(segment.Length, cancellationToken).ConfigureAwait(false);
                    }

                    var sent = 0;
                    while (sent < segment.Length)
                    {
                        sent += await socket.SendAsync(segment[sent..], SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    }
                }

                var length = buffer.Length;
                input.AdvanceTo(buffer.End);
                if (length > 0)
                {
                    RelayMetrics.Bytes.Add(length, tag);
                    await stream.ConsumedAsync(length, cancellationToken).ConfigureAwait(false);
                }

                if (result.IsCompleted)
                {
                    socket.Shutdown(SocketShutdown.Send);
                    return PumpEnd.Completed;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return new PumpEnd(PumpResult.Canceled, "the pump was stopped");
        }
        catch (RelayException ex)
        {
            return new PumpEnd(PumpResult.TunnelFailed, ex.Message);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            return PumpEnd.SocketFailed(side, "writing", ex);
        }
    }
}
