using System.Collections.Concurrent;
using System.Security.Cryptography;
using DeCloud.Relay.Forwarding;
using DeCloud.Relay.Protocol;

namespace DeCloud.Relay.Server;

/// <summary>How presenting a nonce on a data connection went.</summary>
internal enum DataChannelClaim
{
    /// <summary>The nonce matched a waiting channel; the connection now belongs to its stream.</summary>
    Claimed,

    /// <summary>No channel waits under that id: never opened, already used, expired or refused.</summary>
    Unknown,

    /// <summary>A channel waits under that id but the nonce differs; the channel keeps waiting for the right one.</summary>
    WrongNonce,

    /// <summary>The tunnel that asked for the channel has closed.</summary>
    SessionClosed,
}

/// <summary>One data channel the relay asked a node to open: its single-use nonce and the stream waiting for it.</summary>
internal sealed class PendingDataChannel(uint id, ServerSession session)
{
    private readonly TaskCompletionSource<RawConnection> _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public uint Id { get; } = id;

    public ServerSession Session { get; } = session;

    public byte[] Nonce { get; } = RandomNumberGenerator.GetBytes(DataChannelOpenMessage.NonceSize);

    public Task<RawConnection> Connected => _connected.Task;

    public bool TryComplete(RawConnection connection) => _connected.TrySetResult(connection);

    /// <summary>The stream stopped waiting: a connection that arrives from now on is refused, one that just arrived is reset.</summary>
    public void Abandon()
    {
        if (!_connected.TrySetCanceled() && _connected.Task.IsCompletedSuccessfully)
        {
            _connected.Task.Result.Abort();
        }
    }

    public void Refuse(string reason) => _connected.TrySetException(new RelayException($"the node could not open the stream: {reason}"));
}

/// <summary>
/// The data channels waiting for their node's connection, relay-wide. A nonce is compared in constant time, works
/// once, only while its stream waits (the stream's open timeout is its expiry) and only while the tunnel that asked
/// is up.
/// </summary>
internal sealed class DataChannelRegistry
{
    private readonly ConcurrentDictionary<uint, PendingDataChannel> _pending = new();
    private int _nextId;

    public int Count => _pending.Count;

    public PendingDataChannel Register(ServerSession session)
    {
        while (true)
        {
            var channel = new PendingDataChannel((uint)Interlocked.Increment(ref _nextId), session);
            if (_pending.TryAdd(channel.Id, channel))
            {
                return channel;
            }
        }
    }

    /// <summary>Ends a channel's wait (claimed, timed out or refused): its nonce no longer works.</summary>
    public void Remove(PendingDataChannel channel) => _pending.TryRemove(new KeyValuePair<uint, PendingDataChannel>(channel.Id, channel));

    /// <summary>The node refused channel <paramref name="id"/>; only the session that asked may refuse it.</summary>
    public bool Refuse(uint id, ServerSession session, string reason)
    {
        if (_pending.TryGetValue(id, out var channel) && channel.Session == session && _pending.TryRemove(new KeyValuePair<uint, PendingDataChannel>(id, channel)))
        {
            channel.Refuse(reason);
            return true;
        }

        return false;
    }

    /// <summary>Hands <paramref name="connection"/> to the stream waiting on channel <paramref name="id"/> if the nonce matches.</summary>
    public DataChannelClaim Claim(uint id, ReadOnlySpan<byte> nonce, RawConnection connection)
    {
        if (!_pending.TryGetValue(id, out var channel))
        {
            return DataChannelClaim.Unknown;
        }

        if (!CryptographicOperations.FixedTimeEquals(channel.Nonce, nonce))
        {
            return DataChannelClaim.WrongNonce;
        }

        if (!_pending.TryRemove(new KeyValuePair<uint, PendingDataChannel>(id, channel)))
        {
            return DataChannelClaim.Unknown;
        }

        if (channel.Session.Tunnel.Closed.IsCancellationRequested)
        {
            return DataChannelClaim.SessionClosed;
        }

        return channel.TryComplete(connection) ? DataChannelClaim.Claimed : DataChannelClaim.Unknown;
    }
}
