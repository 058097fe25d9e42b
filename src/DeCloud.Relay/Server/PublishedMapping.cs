using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using DeCloud.Relay.Diagnostics;
using DeCloud.Relay.Forwarding;
using DeCloud.Relay.Protocol;
using DeCloud.Relay.Storage;
using Microsoft.Extensions.Logging;

namespace DeCloud.Relay.Server;

/// <summary>
/// The public side of one mapping: its listening TCP socket and/or UDP socket, bound as long as the
/// mapping exists (also while its node is away, so nobody else takes the port), and the session that
/// currently serves it, if any.
/// </summary>
internal sealed class PublishedMapping : IAsyncDisposable
{
    private readonly RelayServerOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<IPEndPoint, UdpFlow> _flowsByClient = new();
    private readonly ConcurrentDictionary<uint, UdpFlow> _flowsById = new();
    private readonly List<Task> _loops = [];
    private Socket? _tcp;
    private Socket? _udp;
    private ITimer? _sweep;
    private Owner? _owner;
    private static long s_nextFlowId;

    public PublishedMapping(StoredMapping record, RelayServerOptions options, TimeProvider timeProvider, ILogger logger)
    {
        Record = record;
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    public StoredMapping Record { get; set; }

    public bool IsBound => (Record.Protocol == RelayProtocol.Udp || _tcp is not null) && (Record.Protocol == RelayProtocol.Tcp || _udp is not null);

    public TokenBucket? InboundLimit { get; private set; }

    public TokenBucket? OutboundLimit { get; private set; }

    public int UdpFlowCount => _flowsById.Count;

    /// <summary>True while a connected node serves this mapping.</summary>
    public bool IsAttached => Volatile.Read(ref _owner) is not null;

    /// <summary>Binds the public sockets; on failure nothing stays bound and the socket error is returned.</summary>
    public SocketError TryBind()
    {
        if (IsBound)
        {
            return SocketError.Success;
        }

        Socket? tcp = null;
        Socket? udp = null;
        try
        {
            if (Record.Protocol != RelayProtocol.Udp)
            {
                tcp = new Socket(_options.PublicAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                tcp.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                tcp.Bind(new IPEndPoint(_options.PublicAddress, Record.PublicPort));
                tcp.Listen(1024);
            }

            if (Record.Protocol != RelayProtocol.Tcp)
            {
                udp = new Socket(_options.PublicAddress.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
                udp.Bind(new IPEndPoint(_options.PublicAddress, Record.PublicPort));
            }
        }
        catch (SocketException ex)
        {
            tcp?.Dispose();
            udp?.Dispose();
            return ex.SocketErrorCode;
        }

        _tcp = tcp;
        _udp = udp;
        if (tcp is not null)
        {
            _loops.Add(Task.Run(() => AcceptLoopAsync(tcp)));
        }

        if (udp is not null)
        {
            _loops.Add(Task.Run(() => UdpLoopAsync(udp)));
            var period = _options.UdpFlowIdleTimeout / 2;
            _sweep = _timeProvider.CreateTimer(static s => ((PublishedMapping)s!).SweepFlows(), this, period, period);
        }

        return SocketError.Success;
    }

    /// <summary>Makes <paramref name="session"/> serve this mapping under <paramref name="mappingId"/>.</summary>
    public void Attach(ServerSession session, uint mappingId)
    {
        var limit = EffectiveLimit(Record.BandwidthLimit, _options.MaxBandwidthPerMapping);
        var burst = Math.Max(64 * 1024, limit / 10);
        InboundLimit = limit > 0 ? new TokenBucket(limit, burst, _timeProvider) : null;
        OutboundLimit = limit > 0 ? new TokenBucket(limit, burst, _timeProvider) : null;
        Volatile.Write(ref _owner, new Owner(session, mappingId));
    }

    /// <summary>The session went away: public connections are refused until the node is back.</summary>
    public void Detach(ServerSession session)
    {
        var current = Volatile.Read(ref _owner);
        if (current is not null && current.Session == session && Interlocked.CompareExchange(ref _owner, null, current) == current)
        {
            CloseFlows();
        }
    }

    /// <summary>A datagram from the node for a flow: send it to the flow's public client.</summary>
    public void SendToClient(uint flowId, ReadOnlySpan<byte> datagram)
    {
        if (_udp is { } udp && _flowsById.TryGetValue(flowId, out var flow))
        {
            flow.Touch(_timeProvider.GetTimestamp());
            try
            {
                udp.SendTo(datagram, SocketFlags.None, flow.Client);
                RelayMetrics.Datagrams.Add(1, new KeyValuePair<string, object?>("direction", "outbound"));
            }
            catch (SocketException)
            {
                RelayMetrics.Error("udp_send");
            }
        }
    }

    /// <summary>The node closed a flow.</summary>
    public void CloseFlow(uint flowId)
    {
        if (_flowsById.TryRemove(flowId, out var flow))
        {
            _flowsByClient.TryRemove(flow.Client, out _);
            RelayMetrics.ActiveStreams.Add(-1);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _sweep?.Dispose();
        _tcp?.Dispose();
        _udp?.Dispose();
        await Task.WhenAll(_loops).ConfigureAwait(false);
        CloseFlows();
        _stop.Dispose();
    }

    internal static long EffectiveLimit(long requested, long cap) =>
        requested == 0 ? cap : cap == 0 ? requested : Math.Min(requested, cap);

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            var owner = Volatile.Read(ref _owner);
            if (owner is not { } o)
            {
                Log.PublicConnectionRefused(_logger, client.RemoteEndPoint as IPEndPoint, Record.PublicPort, "the node is not connected");
                RelayMetrics.Error("node_offline");
                client.LingerState = new LingerOption(true, 0);
                client.Dispose();
                continue;
            }

            _ = o.Session.ForwardTcpAsync(this, o.MappingId, client);
        }
    }

    private async Task UdpLoopAsync(Socket socket)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(4 + 65536, pinned: true);
        var any = new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
        while (!_stop.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await socket.ReceiveFromAsync(buffer.AsMemory(4), SocketFlags.None, any, _stop.Token).ConfigureAwait(false);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
            {
                continue;
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            var owner = Volatile.Read(ref _owner);
            if (owner is not { } o || received.RemoteEndPoint is not IPEndPoint client)
            {
                RelayMetrics.Error("node_offline");
                continue;
            }

            var now = _timeProvider.GetTimestamp();
            if (!_flowsByClient.TryGetValue(client, out var flow))
            {
                if (_flowsById.Count >= _options.MaxUdpFlowsPerMapping)
                {
                    RelayMetrics.Error("udp_flow_limit");
                    continue;
                }

                flow = new UdpFlow((uint)Interlocked.Increment(ref s_nextFlowId), client, now);
                _flowsByClient[client] = flow;
                _flowsById[flow.Id] = flow;
                RelayMetrics.Streams.Add(1, new KeyValuePair<string, object?>("protocol", "udp"));
                RelayMetrics.ActiveStreams.Add(1);
            }

            flow.Touch(now);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(buffer, o.MappingId);
            try
            {
                await o.Session.Tunnel.SendAsync(FrameType.UdpDatagram, flow.Id, buffer.AsMemory(0, 4 + received.ReceivedBytes)).ConfigureAwait(false);
                RelayMetrics.Datagrams.Add(1, new KeyValuePair<string, object?>("direction", "inbound"));
            }
            catch (RelayException)
            {
                RelayMetrics.Error("tunnel_closed");
            }
        }
    }

    private void SweepFlows()
    {
        var now = _timeProvider.GetTimestamp();
        var owner = Volatile.Read(ref _owner);
        foreach (var flow in _flowsById.Values)
        {
            if (_timeProvider.GetElapsedTime(flow.LastSeen, now) >= _options.UdpFlowIdleTimeout)
            {
                CloseFlow(flow.Id);
                if (owner is { } o)
                {
                    var payload = new byte[4];
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(payload, o.MappingId);
                    o.Session.Tunnel.SendInBackground(FrameType.UdpFlowClose, flow.Id, payload);
                }
            }
        }
    }

    private void CloseFlows()
    {
        foreach (var id in _flowsById.Keys)
        {
            CloseFlow(id);
        }
    }

    private sealed record Owner(ServerSession Session, uint MappingId);

    private sealed class UdpFlow(uint id, IPEndPoint client, long now)
    {
        private long _lastSeen = now;

        public uint Id { get; } = id;

        public IPEndPoint Client { get; } = client;

        public long LastSeen => Volatile.Read(ref _lastSeen);

        public void Touch(long now) => Volatile.Write(ref _lastSeen, now);
    }
}
