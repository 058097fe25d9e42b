using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using DeCloud.Relay.Protocol;

namespace DeCloud.Relay.Tunnel;

/// <summary>
/// One multiplexed stream. Outbound bytes are bounded by credit granted by the peer; inbound bytes
/// land in a pipe bounded by our receive window, which doubles (up to a maximum) while the consumer
/// drains it faster than about two round trips per half window, so long fat links are not capped.
/// </summary>
internal sealed class TunnelStream
{
    private static readonly PipeOptions InboundPipeOptions = new(pauseWriterThreshold: 0, resumeWriterThreshold: 0, useSynchronizationContext: false, minimumSegmentSize: 4096);

    private readonly TunnelConnection _tunnel;
    private readonly Pipe _inbound = new(InboundPipeOptions);
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource<bool> _accepted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _sendCredit;
    private TaskCompletionSource? _creditWaiter;
    private Exception? _sendFailure;
    private int _receiveWindow;
    private long _outstanding;
    private long _unacknowledged;
    private long _lastUpdateTimestamp;
    private bool _finSent;
    private bool _finReceived;
    private bool _removed;

    public TunnelStream(TunnelConnection tunnel, uint id, int initialWindow)
    {
        _tunnel = tunnel;
        Id = id;
        _sendCredit = initialWindow;
        _receiveWindow = initialWindow;
        _lastUpdateTimestamp = tunnel.TimeProvider.GetTimestamp();
    }

    public uint Id { get; }

    /// <summary>Completes with true when the peer accepted the stream, false when it reset it or the tunnel closed.</summary>
    public Task<bool> Accepted => _accepted.Task;

    /// <summary>Bytes received from the peer, in order; completes on FIN, faults on reset.</summary>
    public PipeReader Input => _inbound.Reader;

    /// <summary>The current receive window (grows with demand).</summary>
    public int ReceiveWindow
    {
        get
        {
            lock (_lock)
            {
                return _receiveWindow;
            }
        }
    }

    /// <summary>Sends <paramref name="data"/>, waiting for credit; frames are at most <see cref="FrameHeader.MaxPayload"/> bytes.</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        while (!data.IsEmpty)
        {
            var granted = await TakeCreditAsync(Math.Min(data.Length, FrameHeader.MaxPayload), cancellationToken).ConfigureAwait(false);
            await _tunnel.SendAsync(FrameType.Data, Id, data[..granted], cancellationToken).ConfigureAwait(false);
            data = data[granted..];
        }
    }

    /// <summary>Half-closes our sending side.</summary>
    public async ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_finSent || _sendFailure is not null)
            {
                return;
            }

            _finSent = true;
        }

        await _tunnel.SendAsync(FrameType.Fin, Id, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
        RemoveIfDone();
    }

    /// <summary>Aborts the stream in both directions and tells the peer why; both ends log the reason.</summary>
    public void Abort(WireError code, string reason)
    {
        if (FailLocally(new RelayException($"The stream {Id} was reset ({code}): {reason}.")))
        {
            _tunnel.ResetStream(Id, code, reason);
        }
    }

    /// <summary>The consumer wrote <paramref name="count"/> inbound bytes onward: credit them back to the peer.</summary>
    public ValueTask ConsumedAsync(long count, CancellationToken cancellationToken = default)
    {
        long increment;
        lock (_lock)
        {
            _outstanding -= count;
            _unacknowledged += count;
            if (_unacknowledged < _receiveWindow / 2 || _finReceived || _sendFailure is not null)
            {
                return ValueTask.CompletedTask;
            }

            increment = _unacknowledged;
            _unacknowledged = 0;
            var now = _tunnel.TimeProvider.GetTimestamp();
            var elapsed = _tunnel.TimeProvider.GetElapsedTime(_lastUpdateTimestamp, now);
            _lastUpdateTimestamp = now;
            if (_receiveWindow < _tunnel.Settings.MaxWindow && elapsed < 2 * _tunnel.SmoothedRtt)
            {
                // Half a window drained within two round trips: the window, not the consumer, limits throughput.
                var growth = Math.Min(_receiveWindow, _tunnel.Settings.MaxWindow - _receiveWindow);
                _receiveWindow += growth;
                increment += growth;
            }
        }

        var payload = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(payload, (uint)increment);
        return _tunnel.SendAsync(FrameType.WindowUpdate, Id, payload, cancellationToken);
    }

    internal bool OnData(in ReadOnlySequence<byte> payload)
    {
        // The inbound pipe's writer is not thread-safe, and a local abort (FailLocally, on a pump's thread) completes it
        // while the read loop writes: every writer call happens under the lock, after the check that the stream is live,
        // so a DATA frame racing an abort is dropped instead of writing into a completed pipe (which threw on the read
        // loop and tore down the whole tunnel with every other stream on it).
        lock (_lock)
        {
            if (_finReceived || _sendFailure is not null)
            {
                return true;
            }

            if (_outstanding + payload.Length > _receiveWindow)
            {
                return false;
            }

            _outstanding += payload.Length;
            foreach (var segment in payload)
            {
                _inbound.Writer.Write(segment.Span);
            }

            // The pipe never pauses its writer (no threshold) and resumes its reader on the thread pool, so this
            // completes at once and runs no consumer code under the lock.
            var flush = _inbound.Writer.FlushAsync();
            if (flush.IsCompleted)
            {
                flush.GetAwaiter().GetResult();
            }
            else
            {
                _ = flush.AsTask();
            }
        }

        return true;
    }

    internal void OnAccepted() => _accepted.TrySetResult(true);

    internal void OnWindowUpdate(uint increment)
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            _sendCredit += increment;
            waiter = _creditWaiter;
            _creditWaiter = null;
        }

        waiter?.TrySetResult();
    }

    internal void OnFin()
    {
        lock (_lock)
        {
            if (_finReceived || _sendFailure is not null)
            {
                return;
            }

            _finReceived = true;
            _inbound.Writer.Complete();
        }

        RemoveIfDone();
    }

    internal void OnReset(WireError code, string reason)
    {
        if (FailLocally(new RelayException($"The peer reset stream {Id} ({code}): {reason}.")))
        {
            _tunnel.LogPeerReset(Id, code, reason);
        }
    }

    /// <summary>Fails both directions; returns false when the stream had already failed.</summary>
    internal bool FailLocally(Exception error)
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            if (_sendFailure is not null)
            {
                return false;
            }

            _sendFailure = error;
            waiter = _creditWaiter;
            _creditWaiter = null;
            _inbound.Writer.Complete(error);
        }

        waiter?.TrySetException(error);
        _accepted.TrySetResult(false);
        Remove();
        return true;
    }

    private async ValueTask<int> TakeCreditAsync(int wanted, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_sendFailure is not null)
                {
                    throw _sendFailure;
                }

                if (_sendCredit > 0)
                {
                    var granted = (int)Math.Min(wanted, _sendCredit);
                    _sendCredit -= granted;
                    return granted;
                }

                _creditWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _creditWaiter.Task;
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void RemoveIfDone()
    {
        bool done;
        lock (_lock)
        {
            done = _finSent && _finReceived;
        }

        if (done)
        {
            Remove();
        }
    }

    private void Remove()
    {
        lock (_lock)
        {
            if (_removed)
            {
                return;
            }

            _removed = true;
        }

        _tunnel.RemoveStream(this);
    }
}
