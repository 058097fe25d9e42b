using System.Collections.Concurrent;
using System.Net.Sockets;
using DeCloud.Relay.Forwarding;
using DeCloud.Relay.Protocol;

namespace DeCloud.Relay.Client;

/// <summary>
/// A few data connections dialled ahead (TCP, TLS and the relay's Hello done), so a stream that arrives during a burst
/// only sends its nonce instead of waiting for a handshake. Demand-driven: the pool is refilled only when a stream
/// takes from it, and a connection idle longer than the limit is closed by a sweep and not replaced, so an idle node
/// holds nothing open at the relay beyond its tunnel.
/// </summary>
internal sealed class WarmDataConnections : IDisposable
{
    private readonly RelayDialer _dialer;
    private readonly int _size;
    private readonly TimeSpan _maxIdle;
    private readonly TimeSpan _dialTimeout;
    private readonly TimeProvider _timeProvider;
    private readonly CancellationToken _closed;
    private readonly ConcurrentQueue<(RawConnection Connection, long Since)> _idle = new();
    private readonly ITimer _sweep;
    private int _count;

    public WarmDataConnections(RelayDialer dialer, int size, TimeSpan maxIdle, TimeSpan dialTimeout, TimeProvider timeProvider, CancellationToken closed)
    {
        _dialer = dialer;
        _size = size;
        _maxIdle = maxIdle;
        _dialTimeout = dialTimeout;
        _timeProvider = timeProvider;
        _closed = closed;
        _sweep = timeProvider.CreateTimer(static s => ((WarmDataConnections)s!).Sweep(), this, maxIdle / 2, maxIdle / 2);
    }

    /// <summary>Connections idle or being dialled now.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>A live warm connection (its Hello already read), or null; either way dials replacements.</summary>
    public RawConnection? TryTake()
    {
        RawConnection? taken = null;
        while (taken is null && _idle.TryDequeue(out var entry))
        {
            Interlocked.Decrement(ref _count);
            if (IsFresh(entry.Since) && IsOpen(entry.Connection.Socket))
            {
                taken = entry.Connection;
            }
            else
            {
                _ = entry.Connection.DisposeAsync();
            }
        }

        Refill();
        return taken;
    }

    public void Dispose()
    {
        _sweep.Dispose();
        while (_idle.TryDequeue(out var entry))
        {
            Interlocked.Decrement(ref _count);
            _ = entry.Connection.DisposeAsync();
        }
    }

    /// <summary>The relay sends nothing after its Hello until the nonce: a readable socket means it closed the connection.</summary>
    private static bool IsOpen(Socket socket)
    {
        try
        {
            return !socket.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    private bool IsFresh(long since) => _timeProvider.GetElapsedTime(since) < _maxIdle;

    private void Refill()
    {
        while (!_closed.IsCancellationRequested)
        {
            var count = Volatile.Read(ref _count);
            if (count >= _size)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _count, count + 1, count) == count)
            {
                _ = DialOneAsync();
            }
        }
    }

    private async Task DialOneAsync()
    {
        RawConnection? connection = null;
        try
        {
            using var timeout = new CancellationTokenSource(_dialTimeout, _timeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _closed);
            connection = await _dialer.DialAsync(linked.Token).ConfigureAwait(false);
            var (header, payload) = await HandshakeFrames.ReadAsync(connection.Stream, linked.Token).ConfigureAwait(false);
            if (header.Type == FrameType.Hello && HelloMessage.Decode(payload) is not null && !_closed.IsCancellationRequested)
            {
                _idle.Enqueue((connection, _timeProvider.GetTimestamp()));
                if (_closed.IsCancellationRequested)
                {
                    Dispose();
                }

                return;
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or RelayException or System.Security.Authentication.AuthenticationException)
        {
        }

        Interlocked.Decrement(ref _count);
        if (connection is not null)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void Sweep()
    {
        // Oldest first: stop at the first fresh one.
        while (_idle.TryPeek(out var entry) && !IsFresh(entry.Since))
        {
            if (_idle.TryDequeue(out var expired))
            {
                Interlocked.Decrement(ref _count);
                _ = expired.Connection.DisposeAsync();
            }
        }
    }
}
