using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using DeCloud.Relay.Diagnostics;
using DeCloud.Relay.Forwarding;
using DeCloud.Relay.Protocol;
using DeCloud.Relay.Tunnel;
using Microsoft.Extensions.Logging;

namespace DeCloud.Relay.Client;

/// <summary>A mapping the node wants published, kept across reconnects.</summary>
internal sealed class DesiredMapping(RelayMappingRequest request)
{
    public RelayMappingRequest Request { get; } = request;

    public RelayMapping? Published { get; set; }

    /// <summary>The target's address, resolved once per session for UDP flows.</summary>
    public IPEndPoint? UdpTarget { get; set; }
}

/// <summary>The node's side of one tunnel: mapping requests, forwarded streams toward targets, UDP flows.</summary>
internal sealed class ClientSession : ITunnelHandler, IDisposable
{
    private readonly RelayClientOptions _options;
    private readonly ILogger _logger;
    private readonly Action<TimeSpan, string> _onGoAway;
    private readonly ConcurrentDictionary<uint, TaskCompletionSource<MapResultMessage>> _pendingMaps = new();
    private readonly ConcurrentDictionary<uint, TaskCompletionSource<ProbeResultMessage>> _pendingProbes = new();
    private readonly ConcurrentDictionary<uint, DesiredMapping> _byMappingId = new();
    private readonly ConcurrentDictionary<uint, UdpFlow> _flows = new();
    private readonly ITimer _sweep;
    private readonly RelayDialer _dialer;
    private readonly WarmDataConnections? _warm;
    private int _nextRequestId;
    private int _dedicatedStreams;

    public ClientSession(TunnelConnection tunnel, string publicHost, RelayClientOptions options, ILogger logger, Action<TimeSpan, string> onGoAway, RelayDialer dialer)
    {
        _dialer = dialer;
        Tunnel = tunnel;
        if (options.EffectiveStreamTransport == RelayStreamTransport.DedicatedConnection && options.DataConnectionPoolSize > 0)
        {
            _warm = new WarmDataConnections(dialer, options.DataConnectionPoolSize, options.DataConnectionPoolIdleTimeout, options.ConnectTimeout, tunnel.TimeProvider, tunnel.Closed);
        }

        PublicHost = publicHost;
        _options = options;
        _logger = logger;
        _onGoAway = onGoAway;
        var period = options.UdpFlowIdleTimeout / 2;
        _sweep = tunnel.TimeProvider.CreateTimer(static s => ((ClientSession)s!).SweepFlows(), this, period, period);
        tunnel.Closed.Register(static s => ((ClientSession)s!).Dispose(), this);
    }

    public TunnelConnection Tunnel { get; }

    public string PublicHost { get; }

    /// <summary>Asks the relay to publish <paramref name="desired"/>; returns the published mapping.</summary>
    public async Task<RelayMapping> MapAsync(DesiredMapping desired, CancellationToken cancellationToken)
    {
        var request = desired.Request;
        if (request.Protocol != RelayProtocol.Tcp && desired.UdpTarget is null)
        {
            desired.UdpTarget = await ResolveAsync(request.TargetHost, request.TargetPort, cancellationToken).ConfigureAwait(false);
        }

        var requestId = (uint)Interlocked.Increment(ref _nextRequestId);
        var result = await RequestAsync(_pendingMaps, requestId, FrameType.MapRequest, new MapRequestMessage(requestId, request.EffectiveName, request.Protocol,
            request.TargetHost, (ushort)request.TargetPort, (ushort)request.PreferredPublicPort, request.UseProxyProtocol, request.BandwidthLimitBytesPerSecond).Encode(), cancellationToken).ConfigureAwait(false);
        if (!result.Ok)
        {
            throw new RelayMappingException($"The relay refused mapping '{request.EffectiveName}': {result.Error}.");
        }

        _byMappingId[result.MappingId] = desired;
        var mapping = new RelayMapping(request.EffectiveName, request.Protocol, PublicHost, result.PublicPort, request.TargetHost, request.TargetPort);
        desired.Published = mapping;
        Log.Published(_logger, request.EffectiveName, mapping.ToString());
        return mapping;
    }

    public async Task<bool> UnmapAsync(string name, CancellationToken cancellationToken)
    {
        var requestId = (uint)Interlocked.Increment(ref _nextRequestId);
        var result = await RequestAsync(_pendingMaps, requestId, FrameType.Unmap, new UnmapMessage(requestId, name).Encode(), cancellationToken).ConfigureAwait(false);
        foreach (var (id, desired) in _byMappingId)
        {
            if (desired.Request.EffectiveName == name)
            {
                _byMappingId.TryRemove(id, out _);
            }
        }

        return result.Ok;
    }

    public async Task<ProbeResultMessage> ProbeAsync(int port, CancellationToken cancellationToken)
    {
        var requestId = (uint)Interlocked.Increment(ref _nextRequestId);
        return await RequestAsync(_pendingProbes, requestId, FrameType.ProbeRequest, new ProbeRequestMessage(requestId, (ushort)port).Encode(), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask OnControlAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        switch (header.Type)
        {
            case FrameType.MapResult when MapResultMessage.Decode(payload.Span) is { } result:
                if (_pendingMaps.TryRemove(result.RequestId, out var pending))
                {
                    pending.TrySetResult(result);
                }

                break;
            case FrameType.ProbeResult when ProbeResultMessage.Decode(payload.Span) is { } probe:
                if (_pendingProbes.TryRemove(probe.RequestId, out var pendingProbe))
                {
                    pendingProbe.TrySetResult(probe);
                }

                break;
            case FrameType.StreamOpen when StreamOpenMessage.Decode(payload.Span) is { } open:
                var stream = Tunnel.AcceptStream(header.StreamId);
                if (stream is null)
                {
                    RelayMetrics.Error("too_many_streams");
                    Tunnel.ResetStream(header.StreamId, WireError.TooManyStreams,
                        $"the node refused the stream: {Tunnel.StreamCount} streams open (limit {Tunnel.Settings.MaxStreams}) or an invalid stream id");
                    break;
                }

                if (!_byMappingId.TryGetValue(open.MappingId, out var desired))
                {
                    RelayMetrics.Error("unknown_mapping");
                    stream.Abort(WireError.ConnectFailed, $"the node has no mapping {open.MappingId}");
                    break;
                }

                _ = ForwardAsync(stream, desired.Request);
                break;
            case FrameType.DataChannelOpen when DataChannelOpenMessage.Decode(payload.Span) is { } channel:
                if (!_byMappingId.TryGetValue(channel.MappingId, out var dedicated) || Interlocked.Increment(ref _dedicatedStreams) > _options.MaxStreams)
                {
                    var known = dedicated is not null;
                    if (known)
                    {
                        Interlocked.Decrement(ref _dedicatedStreams);
                    }

                    RelayMetrics.Error(known ? "too_many_streams" : "unknown_mapping");
                    await Tunnel.SendAsync(FrameType.DataChannelRefused, header.StreamId,
                        new DataChannelRefusedMessage(known ? $"the node has {_options.MaxStreams} streams open (limit)" : "unknown mapping").Encode(), cancellationToken).ConfigureAwait(false);
                    break;
                }

                _ = ForwardDedicatedAsync(header.StreamId, channel, dedicated.Request);
                break;
            case FrameType.GoAway when GoAwayMessage.Decode(payload.Span) is { } goAway:
                _onGoAway(TimeSpan.FromMilliseconds(goAway.ReconnectAfterMilliseconds), goAway.Reason);
                break;
            default:
                Log.MalformedControl(_logger, header.Type.ToString());
                await Tunnel.FailAsync(WireError.ProtocolError, $"unexpected or malformed {header.Type} frame").ConfigureAwait(false);
                break;
        }
    }

    public void OnDatagram(FrameHeader header, in ReadOnlySequence<byte> payload)
    {
        if (payload.Length < 4)
        {
            return;
        }

        Span<byte> prefix = stackalloc byte[4];
        payload.Slice(0, 4).CopyTo(prefix);
        var mappingId = BinaryPrimitives.ReadUInt32BigEndian(prefix);
        if (header.Type == FrameType.UdpFlowClose)
        {
            if (_flows.TryRemove(header.StreamId, out var closed))
            {
                closed.Dispose();
            }

            return;
        }

        if (!_flows.TryGetValue(header.StreamId, out var flow))
        {
            if (!_byMappingId.TryGetValue(mappingId, out var desired) || desired.UdpTarget is null || _flows.Count >= _options.MaxStreams)
            {
                RelayMetrics.Error("udp_unknown_mapping");
                return;
            }

            flow = new UdpFlow(this, header.StreamId, mappingId, desired.UdpTarget);
            _flows[header.StreamId] = flow;
            RelayMetrics.Streams.Add(1, new KeyValuePair<string, object?>("protocol", "udp"));
        }

        var data = payload.Slice(4);
        flow.Send(data.IsSingleSegment ? data.FirstSpan : data.ToArray());
    }

    /// <summary>Warm data connections idle or being dialled (test seam).</summary>
    internal int WarmDataConnectionCount => _warm?.Count ?? 0;

    public void Dispose()
    {
        _sweep.Dispose();
        _warm?.Dispose();
        foreach (var flow in _flows.Values)
        {
            flow.Dispose();
        }

        _flows.Clear();
        var closed = new RelayException($"The tunnel closed: {Tunnel.CloseReason}.", isTransient: true);
        foreach (var pending in _pendingMaps.Values)
        {
            pending.TrySetException(closed);
        }

        foreach (var pending in _pendingProbes.Values)
        {
            pending.TrySetException(closed);
        }
    }

    private static async Task<IPEndPoint> ResolveAsync(string host, int port, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(host, out var address))
        {
            return new IPEndPoint(address, port);
        }

        var addresses = await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        return addresses.Length > 0
            ? new IPEndPoint(addresses[0], port)
            : throw new RelayMappingException($"The target host '{host}' does not resolve.");
    }

    private async Task<T> RequestAsync<T>(ConcurrentDictionary<uint, TaskCompletionSource<T>> pending, uint requestId, FrameType type, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        pending[requestId] = tcs;
        try
        {
            if (Tunnel.Closed.IsCancellationRequested)
            {
                throw new RelayException("The tunnel is closed.", isTransient: true);
            }

            await Tunnel.SendAsync(type, 0, payload, cancellationToken).ConfigureAwait(false);
            using var closed = Tunnel.Closed.Register(static s => ((TaskCompletionSource<T>)s!).TrySetException(new RelayException("The tunnel closed before the relay answered.", isTransient: true)), tcs);
            return await tcs.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            pending.TryRemove(requestId, out _);
        }
    }

    /// <summary>
    /// Serves one stream over a dedicated data connection: connects the target and dials the relay at the same time,
    /// presents the channel's nonce only once the target accepted (so a refused target never looks like a stream
    /// that opened and closed), then pumps raw bytes.
    /// </summary>
    private async Task ForwardDedicatedAsync(uint channelId, DataChannelOpenMessage channel, RelayMappingRequest request)
    {
        var target = $"{request.TargetHost}:{request.TargetPort}";
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        RawConnection? data = null;
        var pumping = false;
        try
        {
            using var timeout = new CancellationTokenSource(_options.TargetConnectTimeout, Tunnel.TimeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, Tunnel.Closed);
            var warm = _warm?.TryTake();
            var dial = warm is null ? _dialer.DialAsync(linked.Token) : Task.FromResult(warm);
            string? failure = null;
            try
            {
                await socket.ConnectAsync(request.TargetHost, request.TargetPort, linked.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                failure = "the target refused: " + (ex is OperationCanceledException ? "timed out" : ex.Message);
                Log.TargetConnectFailed(_logger, target, ex is OperationCanceledException ? "timed out" : ex.Message);
                RelayMetrics.Error("target_connect_failed");
            }

            try
            {
                data = await dial.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
            {
                if (failure is null)
                {
                    failure = "the data connection to the relay failed: " + (ex is OperationCanceledException ? "timed out" : ex.Message);
                    Log.DataConnectionFailed(_logger, target, ex is OperationCanceledException ? "timed out" : ex.Message);
                    RelayMetrics.Error("data_connection_failed");
                }
            }

            if (failure is not null)
            {
                if (data is not null)
                {
                    await data.DisposeAsync().ConfigureAwait(false);
                }

                socket.Dispose();
                Tunnel.SendInBackground(FrameType.DataChannelRefused, channelId, new DataChannelRefusedMessage(failure).Encode());
                return;
            }

            await HandshakeFrames.WriteAsync(data!.Stream, FrameType.DataChannel, channelId, new DataChannelMessage(channel.Nonce).Encode(), linked.Token).ConfigureAwait(false);
            if (warm is null)
            {
                // A fresh connection: the relay's Hello is on its way; read it past before raw bytes follow.
                var (header, payload) = await HandshakeFrames.ReadAsync(data.Stream, linked.Token).ConfigureAwait(false);
                if (header.Type != FrameType.Hello || HelloMessage.Decode(payload) is null)
                {
                    throw new RelayProtocolException($"expected a Hello on the data connection, got {header.Type}");
                }
            }

            pumping = true;
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or RelayException)
        {
            Log.DataConnectionFailed(_logger, target, ex is OperationCanceledException ? "timed out" : ex.Message);
            RelayMetrics.Error("data_connection_failed");
            if (data is not null)
            {
                await data.DisposeAsync().ConfigureAwait(false);
            }

            socket.Dispose();
            Tunnel.SendInBackground(FrameType.DataChannelRefused, channelId, new DataChannelRefusedMessage("the data connection failed").Encode());
            return;
        }
        finally
        {
            if (!pumping)
            {
                Interlocked.Decrement(ref _dedicatedStreams);
            }
        }

        RelayMetrics.Streams.Add(1, new KeyValuePair<string, object?>("protocol", "tcp"));
        RelayMetrics.ActiveStreams.Add(1);
        try
        {
            var result = await ConnectionPump.RunAsync(new RawConnection(socket), data!, PumpDirection.TargetSide, null, null, Tunnel.Closed).ConfigureAwait(false);
            Log.StreamEnded(_logger, target, result.ToString());
        }
        finally
        {
            RelayMetrics.ActiveStreams.Add(-1);
            Interlocked.Decrement(ref _dedicatedStreams);
        }
    }

    private async Task ForwardAsync(TunnelStream stream, RelayMappingRequest request)
    {
        var target = $"{request.TargetHost}:{request.TargetPort}";
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var timeout = new CancellationTokenSource(_options.TargetConnectTimeout, Tunnel.TimeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, Tunnel.Closed);
            await socket.ConnectAsync(request.TargetHost, request.TargetPort, linked.Token).ConfigureAwait(false);
            await Tunnel.SendAsync(FrameType.StreamAccept, stream.Id, ReadOnlyMemory<byte>.Empty, Tunnel.Closed).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or RelayException)
        {
            var reason = ex is OperationCanceledException ? "timed out" : ex.Message;
            Log.TargetConnectFailed(_logger, target, reason);
            RelayMetrics.Error("target_connect_failed");
            stream.Abort(WireError.ConnectFailed, $"the node could not connect to {target}: {reason}");
            socket.Dispose();
            return;
        }

        RelayMetrics.Streams.Add(1, new KeyValuePair<string, object?>("protocol", "tcp"));
        RelayMetrics.ActiveStreams.Add(1);
        try
        {
            var result = await StreamPump.RunAsync(socket, stream, PumpDirection.TargetSide, null, null, Tunnel.Closed).ConfigureAwait(false);
            Log.StreamEnded(_logger, target, result.ToString());
        }
        finally
        {
            RelayMetrics.ActiveStreams.Add(-1);
        }
    }

    private void SweepFlows()
    {
        var now = Tunnel.TimeProvider.GetTimestamp();
        foreach (var flow in _flows.Values)
        {
            if (Tunnel.TimeProvider.GetElapsedTime(flow.LastSeen, now) >= _options.UdpFlowIdleTimeout && _flows.TryRemove(flow.Id, out _))
            {
                flow.Dispose();
                var payload = new byte[4];
                BinaryPrimitives.WriteUInt32BigEndian(payload, flow.MappingId);
                Tunnel.SendInBackground(FrameType.UdpFlowClose, flow.Id, payload);
            }
        }
    }

    /// <summary>One UDP flow toward a target: a connected socket whose replies go back through the tunnel.</summary>
    private sealed class UdpFlow : IDisposable
    {
        private readonly ClientSession _session;
        private readonly Socket _socket;
        private readonly CancellationTokenSource _stop = new();
        private long _lastSeen;

        public UdpFlow(ClientSession session, uint id, uint mappingId, IPEndPoint target)
        {
            _session = session;
            Id = id;
            MappingId = mappingId;
            _lastSeen = session.Tunnel.TimeProvider.GetTimestamp();
            _socket = new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            _socket.Connect(target);
            _ = ReceiveLoopAsync();
        }

        public uint Id { get; }

        public uint MappingId { get; }

        public long LastSeen => Volatile.Read(ref _lastSeen);

        public void Send(ReadOnlySpan<byte> datagram)
        {
            Volatile.Write(ref _lastSeen, _session.Tunnel.TimeProvider.GetTimestamp());
            try
            {
                _socket.Send(datagram, SocketFlags.None);
                RelayMetrics.Datagrams.Add(1, new KeyValuePair<string, object?>("direction", "inbound"));
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                RelayMetrics.Error("udp_send");
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _socket.Dispose();
            _stop.Dispose();
        }

        private async Task ReceiveLoopAsync()
        {
            var buffer = new byte[4 + 65536];
            BinaryPrimitives.WriteUInt32BigEndian(buffer, MappingId);
            while (!_stop.IsCancellationRequested)
            {
                int received;
                try
                {
                    received = await _socket.ReceiveAsync(buffer.AsMemory(4), SocketFlags.None, _stop.Token).ConfigureAwait(false);
                }
                catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
                {
                    continue;
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
                {
                    return;
                }

                Volatile.Write(ref _lastSeen, _session.Tunnel.TimeProvider.GetTimestamp());
                try
                {
                    await _session.Tunnel.SendAsync(FrameType.UdpDatagram, Id, buffer.AsMemory(0, 4 + received)).ConfigureAwait(false);
                    RelayMetrics.Datagrams.Add(1, new KeyValuePair<string, object?>("direction", "outbound"));
                }
                catch (RelayException)
                {
                    return;
                }
            }
        }
    }
}
