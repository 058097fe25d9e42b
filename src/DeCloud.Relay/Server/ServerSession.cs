using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using DeCloud.Relay.Diagnostics;
using DeCloud.Relay.Forwarding;
using DeCloud.Relay.Protocol;
using DeCloud.Relay.Tunnel;
using Microsoft.Extensions.Logging;

namespace DeCloud.Relay.Server;

/// <summary>The relay's side of one authenticated tunnel: serves the node's mapping requests and forwards public traffic to it.</summary>
internal sealed class ServerSession : ITunnelHandler
{
    private readonly RelayServer _server;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<uint, PublishedMapping> _mappings = new();
    private readonly TimeSpan _streamOpenTimeout;
    private readonly DataChannelRegistry _dataChannels;
    private int _nextMappingId;
    private int _dedicatedStreams;
    private int _pendingOpens;

    public ServerSession(RelayServer server, TunnelConnection tunnel, string nodeId, IPEndPoint? remote, TimeSpan streamOpenTimeout, ILogger logger,
        DataChannelRegistry dataChannels, bool dedicated)
    {
        _server = server;
        Tunnel = tunnel;
        NodeId = nodeId;
        Remote = remote;
        _streamOpenTimeout = streamOpenTimeout;
        _logger = logger;
        _dataChannels = dataChannels;
        Transport = dedicated ? RelayStreamTransport.DedicatedConnection : RelayStreamTransport.Multiplexed;
    }

    /// <summary>The data path of this node's TCP streams: dedicated only when the relay and the node both allow it.</summary>
    public RelayStreamTransport Transport { get; }

    /// <summary>Multiplexed streams waiting for the node to accept them.</summary>
    public int PendingStreamOpens => Volatile.Read(ref _pendingOpens);

    /// <summary>Streams open now over dedicated data connections.</summary>
    public int DedicatedStreamCount => Volatile.Read(ref _dedicatedStreams);

    public TunnelConnection Tunnel { get; }

    public string NodeId { get; }

    public IPEndPoint? Remote { get; }

    public uint Attach(PublishedMapping mapping)
    {
        foreach (var (id, existing) in _mappings)
        {
            if (existing == mapping)
            {
                mapping.Attach(this, id);
                return id;
            }
        }

        var newId = (uint)Interlocked.Increment(ref _nextMappingId);
        _mappings[newId] = mapping;
        mapping.Attach(this, newId);
        return newId;
    }

    public void Forget(PublishedMapping mapping)
    {
        foreach (var (id, existing) in _mappings)
        {
            if (existing == mapping)
            {
                _mappings.TryRemove(id, out _);
            }
        }
    }

    /// <summary>The tunnel closed: every mapping it served refuses public traffic until the node returns.</summary>
    public void DetachAll()
    {
        foreach (var mapping in _mappings.Values)
        {
            mapping.Detach(this);
        }

        _mappings.Clear();
    }

    public async ValueTask OnControlAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        switch (header.Type)
        {
            case FrameType.MapRequest when MapRequestMessage.Decode(payload.Span) is { } request:
                var result = await _server.MapAsync(this, request).ConfigureAwait(false);
                await Tunnel.SendAsync(FrameType.MapResult, 0, result.Encode(), cancellationToken).ConfigureAwait(false);
                break;
            case FrameType.Unmap when UnmapMessage.Decode(payload.Span) is { } unmap:
                var removed = await _server.UnmapAsync(NodeId, unmap.Name, cancellationToken).ConfigureAwait(false);
                await Tunnel.SendAsync(FrameType.MapResult, 0, new MapResultMessage(unmap.RequestId, removed, 0, 0, removed ? string.Empty : $"no mapping named '{unmap.Name}'").Encode(), cancellationToken).ConfigureAwait(false);
                break;
            case FrameType.DataChannelRefused when DataChannelRefusedMessage.Decode(payload.Span) is { } refused:
                // A channel that already timed out (or never existed) is not an error: the node may answer late.
                _dataChannels.Refuse(header.StreamId, this, refused.Reason);
                break;
            case FrameType.ProbeRequest when ProbeRequestMessage.Decode(payload.Span) is { } probe:
                _ = ProbeAsync(probe, cancellationToken);
                break;
            default:
                Log.MalformedControl(_logger, NodeId, header.Type.ToString());
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
        if (!_mappings.TryGetValue(BinaryPrimitives.ReadUInt32BigEndian(prefix), out var mapping))
        {
            return;
        }

        if (header.Type == FrameType.UdpFlowClose)
        {
            mapping.CloseFlow(header.StreamId);
            return;
        }

        var data = payload.Slice(4);
        if (data.IsSingleSegment)
        {
            mapping.SendToClient(header.StreamId, data.FirstSpan);
        }
        else
        {
            mapping.SendToClient(header.StreamId, data.ToArray());
        }
    }

    /// <summary>Forwards one accepted public TCP connection, over a dedicated data connection or through the tunnel.</summary>
    public Task ForwardTcpAsync(PublishedMapping mapping, uint mappingId, Socket client)
    {
        client.NoDelay = true;
        return Transport == RelayStreamTransport.DedicatedConnection
            ? ForwardDedicatedAsync(mapping, mappingId, client)
            : ForwardMultiplexedAsync(mapping, mappingId, client);
    }

    /// <summary>A span over opening one forwarded stream (until bytes flow or it is refused), with the node, port and data path.</summary>
    private Activity? StartStreamOpen(PublishedMapping mapping, IPEndPoint? remote)
    {
        var activity = RelayMetrics.ActivitySource.StartActivity("relay.stream.open", ActivityKind.Server);
        if (activity is not null)
        {
            activity.SetTag("decloud.relay.node_id", NodeId);
            activity.SetTag("decloud.relay.public_port", mapping.Record.PublicPort);
            activity.SetTag("decloud.relay.transport", Transport == RelayStreamTransport.DedicatedConnection ? "dedicated" : "multiplexed");
            activity.SetTag("client.address", remote?.Address.ToString());
        }

        return activity;
    }

    private static void Refuse(Socket client)
    {
        try
        {
            client.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        client.Dispose();
    }

    private async Task ForwardDedicatedAsync(PublishedMapping mapping, uint mappingId, Socket client)
    {
        var remote = client.RemoteEndPoint as IPEndPoint;
        var local = client.LocalEndPoint as IPEndPoint;
        if (Interlocked.Increment(ref _dedicatedStreams) > Tunnel.Settings.MaxStreams || remote is null || local is null)
        {
            Interlocked.Decrement(ref _dedicatedStreams);
            Log.PublicConnectionRefused(_logger, remote, mapping.Record.PublicPort, $"the node has {Tunnel.Settings.MaxStreams} streams open (limit)");
            RelayMetrics.Error("too_many_streams");
            Refuse(client);
            return;
        }

        var activity = StartStreamOpen(mapping, remote);
        try
        {
            var channel = _dataChannels.Register(this);
            RawConnection data;
            try
            {
                await Tunnel.SendAsync(FrameType.DataChannelOpen, channel.Id, new DataChannelOpenMessage(mappingId, remote, local, channel.Nonce).Encode()).ConfigureAwait(false);
                data = await channel.Connected.WaitAsync(_streamOpenTimeout, Tunnel.TimeProvider, Tunnel.Closed).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RelayException or TimeoutException or OperationCanceledException)
            {
                var reason = ex switch
                {
                    TimeoutException => $"no data connection from the node within {_streamOpenTimeout}",
                    OperationCanceledException => "the tunnel closed",
                    _ => ex.Message,
                };
                channel.Abandon();
                activity?.SetStatus(ActivityStatusCode.Error, reason);
                activity?.Dispose();
                Log.PublicConnectionRefused(_logger, remote, mapping.Record.PublicPort, reason);
                RelayMetrics.Error(ex is TimeoutException ? "data_connection_timeout" : "connect_failed");
                Refuse(client);
                return;
            }
            finally
            {
                _dataChannels.Remove(channel);
            }

            var near = new RawConnection(client);
            if (mapping.Record.ProxyProtocol)
            {
                try
                {
                    await data.Stream.WriteAsync(ProxyProtocolV2.Build(remote, local)).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
                {
                    activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
                    activity?.Dispose();
                    Log.PublicConnectionRefused(_logger, remote, mapping.Record.PublicPort, "the data connection failed: " + ex.Message);
                    RelayMetrics.Error("connect_failed");
                    data.Abort();
                    near.Abort();
                    return;
                }
            }

            activity?.SetStatus(ActivityStatusCode.Ok);
            activity?.Dispose();
            RelayMetrics.Streams.Add(1, new KeyValuePair<string, object?>("protocol", "tcp"));
            RelayMetrics.ActiveStreams.Add(1);
            try
            {
                var result = await ConnectionPump.RunAsync(near, data, PumpDirection.PublicSide, mapping.InboundLimit, mapping.OutboundLimit, Tunnel.Closed).ConfigureAwait(false);
                if (result != PumpResult.Completed)
                {
                    RelayMetrics.Error("stream_" + (result == PumpResult.SocketFailed ? "client_failed" : "tunnel_failed"));
                }

                Log.StreamEnded(_logger, remote, mapping.Record.PublicPort, result.ToString());
            }
            finally
            {
                RelayMetrics.ActiveStreams.Add(-1);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _dedicatedStreams);
        }
    }

    private async Task ForwardMultiplexedAsync(PublishedMapping mapping, uint mappingId, Socket client)
    {
        var remote = client.RemoteEndPoint as IPEndPoint;
        var local = client.LocalEndPoint as IPEndPoint;

        // Opens the node has not answered yet wait in its control queue, which closes the tunnel as a flood when full:
        // a burst of public connections to a CPU-starved node must cost those connections, not the tunnel.
        var pendingLimit = _server.MaxPendingStreamOpens;
        if (Interlocked.Increment(ref _pendingOpens) > pendingLimit)
        {
            Interlocked.Decrement(ref _pendingOpens);
            Log.PublicConnectionRefused(_logger, remote, mapping.Record.PublicPort, $"{pendingLimit} streams are waiting for the node to accept them (limit)");
            RelayMetrics.Error("too_many_pending_opens");
            Refuse(client);
            return;
        }

        var opening = true;
        var stream = Tunnel.OpenStream();
        if (stream is null || remote is null || local is null)
        {
            Interlocked.Decrement(ref _pendingOpens);
            Log.PublicConnectionRefused(_logger, remote, mapping.Record.PublicPort, $"the tunnel has {Tunnel.StreamCount} streams open (limit)");
            RelayMetrics.Error("too_many_streams");
            Refuse(client);
            return;
        }

        using var activity = StartStreamOpen(mapping, remote);
        try
        {
            await Tunnel.SendAsync(FrameType.StreamOpen, stream.Id, new StreamOpenMessage(mappingId, remote, local).Encode()).ConfigureAwait(false);
            bool accepted;
            try
            {
                accepted = await stream.Accepted.WaitAsync(_streamOpenTimeout, Tunnel.TimeProvider).ConfigureAwait(false);
            }
            finally
            {
                opening = false;
                Interlocked.Decrement(ref _pendingOpens);
            }

            if (!accepted)
            {
                throw new RelayException("the node could not connect to the target");
            }

            if (mapping.Record.ProxyProtocol)
            {
                await stream.WriteAsync(ProxyProtocolV2.Build(remote, local)).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RelayException or TimeoutException)
        {
            if (opening)
            {
                // The StreamOpen itself could not be sent.
                Interlocked.Decrement(ref _pendingOpens);
            }

            var reason = ex is TimeoutException ? $"the node did not accept the stream within {_streamOpenTimeout}" : ex.Message;
            activity?.SetStatus(ActivityStatusCode.Error, reason);
            Log.PublicConnectionRefused(_logger, remote, mapping.Record.PublicPort, reason);
            RelayMetrics.Error("connect_failed");
            stream.Abort(WireError.ConnectFailed, reason);
            Refuse(client);
            return;
        }

        activity?.SetStatus(ActivityStatusCode.Ok);
        activity?.Stop();
        RelayMetrics.Streams.Add(1, new KeyValuePair<string, object?>("protocol", "tcp"));
        RelayMetrics.ActiveStreams.Add(1);
        try
        {
            var result = await StreamPump.RunAsync(client, stream, PumpDirection.PublicSide, mapping.InboundLimit, mapping.OutboundLimit, Tunnel.Closed).ConfigureAwait(false);
            if (result != PumpResult.Completed)
            {
                RelayMetrics.Error("stream_" + (result == PumpResult.SocketFailed ? "client_failed" : "tunnel_failed"));
            }

            Log.StreamEnded(_logger, remote, mapping.Record.PublicPort, result.ToString());
        }
        finally
        {
            RelayMetrics.ActiveStreams.Add(-1);
        }
    }

    private async Task ProbeAsync(ProbeRequestMessage probe, CancellationToken cancellationToken)
    {
        var target = new IPEndPoint(Remote?.Address ?? IPAddress.Loopback, probe.Port);
        var reachable = await ReachabilityProbe.ProbeTcpAsync(target, TimeSpan.FromSeconds(3), Tunnel.TimeProvider, cancellationToken).ConfigureAwait(false);
        try
        {
            await Tunnel.SendAsync(FrameType.ProbeResult, 0, new ProbeResultMessage(probe.RequestId, reachable == RelayReachability.Reachable, target).Encode(), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RelayException or OperationCanceledException)
        {
        }
    }
}
