using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Channels;
using DeCloud.Relay.Diagnostics;
using DeCloud.Relay.Protocol;
using Microsoft.Extensions.Logging;

namespace DeCloud.Relay.Tunnel;

/// <summary>Receives the frames a tunnel does not handle itself.</summary>
internal interface ITunnelHandler
{
    /// <summary>A control frame, processed in order on the tunnel's control loop (never on the read loop).</summary>
    ValueTask OnControlAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken);

    /// <summary>A UDP frame, handled inline on the read loop: must not block.</summary>
    void OnDatagram(FrameHeader header, in ReadOnlySequence<byte> payload);
}

/// <summary>
/// One framed, multiplexed connection over a byte stream (TCP or TLS). A single read loop decodes
/// frames and never waits on the network for writes, so a stalled peer or stream cannot deadlock it;
/// writes are serialized by a lock; keepalive pings measure the round trip used by window growth.
/// </summary>
internal sealed class TunnelConnection : IAsyncDisposable
{
    /// <summary>Most resets of late-accepted streams queued at once (see <see cref="FrameType.StreamAccept"/> handling).</summary>
    private const int MaxLateResets = 64;

    private readonly Stream _transport;
    private readonly PipeReader _reader;
    private readonly Pipe _output = new(new PipeOptions(pauseWriterThreshold: 4 * 1024 * 1024, resumeWriterThreshold: 2 * 1024 * 1024,
        minimumSegmentSize: 64 * 1024, useSynchronizationContext: false));
    private readonly PipeWriter _writer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Task _outputLoop;
    private readonly ConcurrentDictionary<uint, TunnelStream> _streams = new();
    private readonly CancellationTokenSource _closed = new();
    private readonly ILogger _logger;
    private readonly bool _opensOddStreams;
    private long _lastReceiveTimestamp;
    private long _nextStreamId;
    private long _rttTicks = TimeSpan.FromMilliseconds(10).Ticks;
    private int _pongPending;
    private int _lateResets;
    private bool _outputCompleted;
    private string? _closeReason;

    private readonly Socket? _socket;

    public TunnelConnection(Stream transport, TunnelSettings settings, bool isServer, TimeProvider timeProvider, ILogger logger, string name, Socket? socket = null)
    {
        _socket = socket;
        _transport = transport;
        Settings = settings;
        TimeProvider = timeProvider;
        _logger = logger;
        Name = name;
        _opensOddStreams = isServer;
        _nextStreamId = isServer ? -1 : 0;
        _reader = PipeReader.Create(transport, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 8 * 1024, leaveOpen: true));
        // Writers only copy frames into an in-memory pipe under the lock; one loop writes them to the transport,
        // so frames of many streams leave in few large writes and no writer holds the lock across a syscall.
        _writer = _output.Writer;
        _outputLoop = Task.Run(WriteLoopAsync);
        _lastReceiveTimestamp = timeProvider.GetTimestamp();
    }

    public TunnelSettings Settings { get; }

    public TimeProvider TimeProvider { get; }

    /// <summary>A label for logs (node id and remote address).</summary>
    public string Name { get; set; }

    /// <summary>Smoothed round trip measured by keepalive pings.</summary>
    public TimeSpan SmoothedRtt => TimeSpan.FromTicks(Interlocked.Read(ref _rttTicks));

    /// <summary>Cancelled when the tunnel closes.</summary>
    public CancellationToken Closed => _closed.Token;

    /// <summary>Why the tunnel closed, once it has.</summary>
    public string? CloseReason => Volatile.Read(ref _closeReason);

    public int StreamCount => _streams.Count;

    /// <summary>Sends one frame. Cancellation only abandons waiting for the write lock; a started write always finishes or closes the tunnel.</summary>
    public async ValueTask SendAsync(FrameType type, uint streamId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        if (_closed.IsCancellationRequested)
        {
            throw new RelayException($"The tunnel {Name} is closed: {CloseReason}.", isTransient: true);
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_outputCompleted)
            {
                // After a graceful goodbye (GoAway or an error frame) nothing more is sent; the tunnel itself is fine.
                throw new RelayException($"The tunnel {Name} is closing: {CloseReason ?? "its output is complete"}.", isTransient: true);
            }

            var span = _writer.GetSpan(FrameHeader.Size);
            new FrameHeader(FrameHeader.CurrentVersion, type, 0, streamId, payload.Length).Write(span);
            _writer.Advance(FrameHeader.Size);
            if (!payload.IsEmpty)
            {
                _writer.Write(payload.Span);
            }

            var result = await _writer.FlushAsync(_closed.Token).ConfigureAwait(false);
            if (result.IsCanceled || result.IsCompleted)
            {
                throw new RelayException($"The tunnel {Name} is closed: {CloseReason}.", isTransient: true);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            Abort("write failed: " + ex.Message);
            throw new RelayException($"The tunnel {Name} is closed: {CloseReason}.", isTransient: true, ex);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Sends a frame without waiting (used from the read loop, which must never block on writes).</summary>
    public void SendInBackground(FrameType type, uint streamId, ReadOnlyMemory<byte> payload)
    {
        if (_closed.IsCancellationRequested)
        {
            return;
        }

        _ = SendQuietlyAsync(type, streamId, payload);
    }

    /// <summary>Reads one whole frame (used for the handshake before <see cref="RunAsync"/>).</summary>
    public async Task<(FrameHeader Header, byte[] Payload)> ReadFrameAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            var status = FrameDecoder.TryDecode(ref buffer, out var header, out var payload);
            if (status == FrameDecodeStatus.Ok)
            {
                var bytes = payload.ToArray();
                _reader.AdvanceTo(buffer.Start);
                MarkReceived();
                return (header, bytes);
            }

            _reader.AdvanceTo(buffer.Start, buffer.End);
            if (status != FrameDecodeStatus.NeedMoreData)
            {
                throw new RelayProtocolException(FrameDecoder.Describe(status, header));
            }

            if (result.IsCompleted)
            {
                throw new RelayException($"The peer closed the tunnel {Name} during the handshake.", isTransient: true);
            }
        }
    }

    /// <summary>Runs the read, control and keepalive loops until the tunnel closes; returns the reason.</summary>
    public async Task<string> RunAsync(ITunnelHandler handler, CancellationToken cancellationToken)
    {
        using var link = cancellationToken.Register(static s => ((TunnelConnection)s!).Abort("stopped"), this);
        var control = Channel.CreateBounded<(FrameHeader, byte[])>(new BoundedChannelOptions(Settings.MaxQueuedControlFrames)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        var controlLoop = RunControlLoopAsync(handler, control.Reader);
        var keepAlive = RunKeepAliveAsync();
        try
        {
            await ReadLoopAsync(handler, control.Writer).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException || _closed.IsCancellationRequested)
        {
            // The transport failed, or the tunnel was already closing (a read racing the close).
            Abort("read failed: " + ex.Message);
        }
        catch (Exception ex)
        {
            // A bug on this end, not the network or the peer: say so loudly (the peer only sees the connection close),
            // close the tunnel with the reason, and keep the process running.
            Log.ReadLoopFailed(_logger, Name, ex);
            RelayMetrics.Error("tunnel_internal_error");
            Abort($"internal error while reading frames: {ex.GetType().Name}: {ex.Message}");
        }

        control.Writer.TryComplete();
        Abort("peer closed the connection");
        await controlLoop.ConfigureAwait(false);
        await keepAlive.ConfigureAwait(false);
        return CloseReason ?? "closed";
    }

    /// <summary>Opens a new outgoing stream, or null when the stream limit is reached.</summary>
    public TunnelStream? OpenStream()
    {
        if (_streams.Count >= Settings.MaxStreams || _closed.IsCancellationRequested)
        {
            return null;
        }

        var id = (uint)Interlocked.Add(ref _nextStreamId, 2);
        var stream = new TunnelStream(this, id, Settings.InitialWindow);
        _streams[id] = stream;
        return stream;
    }

    /// <summary>Registers a stream the peer opened, or null when the id is invalid, taken, or over the limit.</summary>
    public TunnelStream? AcceptStream(uint id)
    {
        if (_streams.Count >= Settings.MaxStreams || _closed.IsCancellationRequested || ((id & 1) == 1) == _opensOddStreams)
        {
            return null;
        }

        var stream = new TunnelStream(this, id, Settings.InitialWindow);
        return _streams.TryAdd(id, stream) ? stream : null;
    }

    public bool TryGetStream(uint id, out TunnelStream? stream) => _streams.TryGetValue(id, out stream);

    /// <summary>
    /// Resets stream <paramref name="id"/> at the peer (best effort, never blocks) and logs why. Used by
    /// <see cref="TunnelStream.Abort"/> and to refuse a stream the peer opened without ever registering it.
    /// </summary>
    public void ResetStream(uint id, WireError code, string reason)
    {
        if (_closed.IsCancellationRequested)
        {
            // Every stream failed with the tunnel, whose close reason is logged once.
            return;
        }

        SendInBackground(FrameType.Reset, id, LogReset(id, code, reason));
    }

    private ReadOnlyMemory<byte> LogReset(uint id, WireError code, string reason)
    {
        var tag = WireErrors.Tag(code);
        Log.StreamReset(_logger, Name, id, tag, reason);
        RelayMetrics.StreamReset(tag, local: true);
        return new ResetMessage(code, reason).Encode();
    }

    private async Task SendLateResetAsync(uint id)
    {
        try
        {
            await SendAsync(FrameType.Reset, id, LogReset(id, WireError.StreamAborted, "accepted after the opener gave up on the stream")).ConfigureAwait(false);
        }
        catch (RelayException)
        {
            // The tunnel closed; its reason is logged where it closed.
        }
        finally
        {
            Interlocked.Decrement(ref _lateResets);
        }
    }

    internal void LogPeerReset(uint id, WireError code, string reason)
    {
        var tag = WireErrors.Tag(code);
        Log.StreamResetByPeer(_logger, Name, id, tag, reason);
        RelayMetrics.StreamReset(tag, local: false);
    }

    internal void RemoveStream(TunnelStream stream) => _streams.TryRemove(new KeyValuePair<uint, TunnelStream>(stream.Id, stream));

    /// <summary>
    /// Sends an error frame (best effort, bounded) and closes. With <paramref name="drain"/> (only from the reading side)
    /// it half-closes and discards what the peer still sends for a moment, so the peer reads the error instead of a reset.
    /// </summary>
    public async Task FailAsync(WireError code, string reason, bool drain = false)
    {
        Log.TunnelProtocolError(_logger, Name, code.ToString(), reason);
        RelayMetrics.Error(code.ToString());
        try
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(2), TimeProvider);
            await SendAsync(FrameType.Error, 0, new ErrorMessage(code, reason).Encode(), bound.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RelayException or OperationCanceledException)
        {
            // The peer may already be gone; the reason is logged above.
        }

        await CompleteOutputAsync().ConfigureAwait(false);
        if (drain && _socket is not null)
        {
            await DrainAsync().ConfigureAwait(false);
        }

        Abort(reason);
    }

    /// <summary>Closes the tunnel at once; every stream fails.</summary>
    public void Abort(string reason)
    {
        if (Interlocked.CompareExchange(ref _closeReason, reason, null) is not null)
        {
            return;
        }

        try
        {
            _closed.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        var error = new RelayException($"The tunnel {Name} closed: {reason}.", isTransient: true);
        foreach (var stream in _streams.Values)
        {
            stream.FailLocally(error);
        }

        _reader.CancelPendingRead();
        _writer.CancelPendingFlush();
        _output.Reader.CancelPendingRead();
        _transport.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        Abort("disposed");
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            // The transport is already closed: completing only returns pooled buffers; unflushed bytes are dropped.
            _outputCompleted = true;
            await _reader.CompleteAsync().ConfigureAwait(false);
            await _writer.CompleteAsync().ConfigureAwait(false);
            await _outputLoop.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or IOException or InvalidOperationException)
        {
        }
        finally
        {
            _writeLock.Release();
        }

        _closed.Dispose();
    }

    /// <summary>Stops accepting frames and waits (bounded) until the queued ones reached the transport.</summary>
    public async Task CompleteOutputAsync()
    {
        try
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(2), TimeProvider);
            await _writeLock.WaitAsync(bound.Token).ConfigureAwait(false);
            try
            {
                _outputCompleted = true;
                await _writer.CompleteAsync().ConfigureAwait(false);
            }
            finally
            {
                _writeLock.Release();
            }

            await _outputLoop.WaitAsync(bound.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }

    private async Task WriteLoopAsync()
    {
        var reader = _output.Reader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (buffer.IsSingleSegment)
                {
                    await _transport.WriteAsync(buffer.First, _closed.Token).ConfigureAwait(false);
                }
                else
                {
                    // Frames straddle segments: gather into one write (one syscall, full TLS records) instead of several small ones.
                    var rented = ArrayPool<byte>.Shared.Rent((int)Math.Min(buffer.Length, 1024 * 1024));
                    try
                    {
                        while (!buffer.IsEmpty)
                        {
                            var chunk = buffer.Slice(0, Math.Min(buffer.Length, rented.Length));
                            chunk.CopyTo(rented);
                            await _transport.WriteAsync(rented.AsMemory(0, (int)chunk.Length), _closed.Token).ConfigureAwait(false);
                            buffer = buffer.Slice(chunk.End);
                        }
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(rented);
                    }
                }

                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException or NotSupportedException)
        {
            Abort("write failed: " + ex.Message);
        }

        await reader.CompleteAsync().ConfigureAwait(false);
    }

    private async Task DrainAsync()
    {
        try
        {
            _socket!.Shutdown(SocketShutdown.Send);
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(1), TimeProvider);
            long discarded = 0;
            while (discarded < 1024 * 1024)
            {
                var result = await _reader.ReadAsync(bound.Token).ConfigureAwait(false);
                discarded += result.Buffer.Length;
                _reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
        }
    }

    private void MarkReceived() => Interlocked.Exchange(ref _lastReceiveTimestamp, TimeProvider.GetTimestamp());

    private async Task ReadLoopAsync(ITunnelHandler handler, ChannelWriter<(FrameHeader, byte[])> control)
    {
        while (true)
        {
            var result = await _reader.ReadAsync().ConfigureAwait(false);
            if (result.IsCanceled)
            {
                return;
            }

            var buffer = result.Buffer;
            var any = false;
            while (true)
            {
                var status = FrameDecoder.TryDecode(ref buffer, out var header, out var payload);
                if (status == FrameDecodeStatus.NeedMoreData)
                {
                    break;
                }

                if (status != FrameDecodeStatus.Ok)
                {
                    _reader.AdvanceTo(buffer.Start, buffer.End);
                    await FailAsync(status == FrameDecodeStatus.UnsupportedVersion ? WireError.UnsupportedVersion : WireError.ProtocolError, FrameDecoder.Describe(status, header), drain: true).ConfigureAwait(false);
                    return;
                }

                any = true;
                var problem = Dispatch(handler, control, header, payload);
                if (problem is not null)
                {
                    _reader.AdvanceTo(buffer.Start, buffer.End);
                    await FailAsync(problem.Value.Code, problem.Value.Reason, drain: true).ConfigureAwait(false);
                    return;
                }
            }

            if (any)
            {
                MarkReceived();
            }

            _reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return;
            }
        }
    }

    private (WireError Code, string Reason)? Dispatch(ITunnelHandler handler, ChannelWriter<(FrameHeader, byte[])> control, FrameHeader header, in ReadOnlySequence<byte> payload)
    {
        TunnelStream? stream;
        switch (header.Type)
        {
            case FrameType.Data:
                if (_streams.TryGetValue(header.StreamId, out stream) && !stream.OnData(payload))
                {
                    return (WireError.FlowControlViolation, $"stream {header.StreamId} sent more than its window of {stream.ReceiveWindow} bytes");
                }

                return null;
            case FrameType.WindowUpdate:
                if (payload.Length != 4)
                {
                    return (WireError.ProtocolError, "malformed window update");
                }

                if (_streams.TryGetValue(header.StreamId, out stream))
                {
                    stream.OnWindowUpdate(BinaryPrimitives.ReadUInt32BigEndian(PayloadSpan.Of(payload)));
                }

                return null;
            case FrameType.StreamAccept:
                if (_streams.TryGetValue(header.StreamId, out stream))
                {
                    stream.OnAccepted();
                }
                else if (((header.StreamId & 1) == 1) == _opensOddStreams && header.StreamId <= Interlocked.Read(ref _nextStreamId))
                {
                    // We opened it and gave up (open timeout, or the public client left) before the peer got to it:
                    // reset it, or the peer would keep the stream and its target connection waiting for credit forever.
                    // Bounded, so a peer repeating such accepts cannot queue unbounded writes.
                    if (Interlocked.Increment(ref _lateResets) <= MaxLateResets)
                    {
                        _ = SendLateResetAsync(header.StreamId);
                    }
                    else
                    {
                        Interlocked.Decrement(ref _lateResets);
                    }
                }

                return null;
            case FrameType.Fin:
                if (_streams.TryGetValue(header.StreamId, out stream))
                {
                    stream.OnFin();
                }

                return null;
            case FrameType.Reset:
                if (_streams.TryGetValue(header.StreamId, out stream))
                {
                    var reset = ResetMessage.Decode(PayloadSpan.Of(payload));
                    stream.OnReset(reset.Code, reset.Reason);
                }

                return null;
            case FrameType.Ping:
                if (payload.Length != 8)
                {
                    return (WireError.ProtocolError, "malformed ping");
                }

                // One pong in flight at most: a ping flood cannot queue unbounded writes.
                if (Interlocked.CompareExchange(ref _pongPending, 1, 0) == 0)
                {
                    _ = SendPongAsync(payload.ToArray());
                }

                return null;
            case FrameType.Pong:
                if (payload.Length == 8)
                {
                    var sent = BinaryPrimitives.ReadInt64BigEndian(PayloadSpan.Of(payload));
                    var sample = TimeProvider.GetElapsedTime(sent);
                    if (sample >= TimeSpan.Zero && sample < TimeSpan.FromMinutes(1))
                    {
                        var old = Interlocked.Read(ref _rttTicks);
                        Interlocked.Exchange(ref _rttTicks, (old * 7 / 8) + (sample.Ticks / 8));
                    }
                }

                return null;
            case FrameType.UdpDatagram:
            case FrameType.UdpFlowClose:
                handler.OnDatagram(header, payload);
                return null;
            case FrameType.Error:
                var error = ErrorMessage.Decode(PayloadSpan.Of(payload));
                Log.PeerError(_logger, Name, error?.Code.ToString() ?? "unknown", error?.Message ?? "malformed error frame");
                Abort("peer error: " + (error?.Message ?? "malformed"));
                return null;
            default:
                if (!control.TryWrite((header, payload.ToArray())))
                {
                    return (WireError.ProtocolError, $"more than {Settings.MaxQueuedControlFrames} control frames queued (flood)");
                }

                return null;
        }
    }

    private async Task RunControlLoopAsync(ITunnelHandler handler, ChannelReader<(FrameHeader, byte[])> control)
    {
        await Task.Yield();
        try
        {
            await foreach (var (header, payload) in control.ReadAllAsync().ConfigureAwait(false))
            {
                await handler.OnControlAsync(header, payload, _closed.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RelayException or OperationCanceledException or IOException)
        {
            Abort("control failed: " + ex.Message);
        }
    }

    private async Task RunKeepAliveAsync()
    {
        // A first ping right away measures the round trip used by window growth.
        var payload = new byte[8];
        try
        {
            while (!_closed.IsCancellationRequested)
            {
                var silence = TimeProvider.GetElapsedTime(Interlocked.Read(ref _lastReceiveTimestamp));
                if (silence > Settings.KeepAliveTimeout)
                {
                    Log.KeepAliveTimeout(_logger, Name, silence);
                    RelayMetrics.Error("keepalive_timeout");
                    Abort($"no frame for {silence.TotalSeconds:F1} s (keepalive timeout)");
                    return;
                }

                BinaryPrimitives.WriteInt64BigEndian(payload, TimeProvider.GetTimestamp());
                await SendAsync(FrameType.Ping, 0, payload.ToArray(), _closed.Token).ConfigureAwait(false);
                await Task.Delay(Settings.KeepAliveInterval, TimeProvider, _closed.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RelayException or OperationCanceledException)
        {
            // Closed.
        }
    }

    private async Task SendPongAsync(byte[] payload)
    {
        try
        {
            await SendAsync(FrameType.Pong, 0, payload).ConfigureAwait(false);
        }
        catch (RelayException)
        {
        }
        finally
        {
            Volatile.Write(ref _pongPending, 0);
        }
    }

    private async Task SendQuietlyAsync(FrameType type, uint streamId, ReadOnlyMemory<byte> payload)
    {
        try
        {
            await SendAsync(type, streamId, payload).ConfigureAwait(false);
        }
        catch (RelayException)
        {
            // The tunnel closed; its reason is logged where it closed.
        }
    }
}
