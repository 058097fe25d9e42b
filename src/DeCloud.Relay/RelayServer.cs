using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using DeCloud.Relay.Diagnostics;
using DeCloud.Relay.Forwarding;
using DeCloud.Relay.Ports;
using DeCloud.Relay.Protocol;
using DeCloud.Relay.Server;
using DeCloud.Relay.Storage;
using DeCloud.Relay.Tunnel;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Log = DeCloud.Relay.Server.Log;

namespace DeCloud.Relay;

/// <summary>
/// The relay, on a host with a public address: accepts tunnels from nodes, authenticates them, holds
/// their public ports (durably, in SQLite) and forwards public TCP connections and UDP flows through
/// the tunnels. Usable without DI: <c>await using var relay = new RelayServer(options, authenticator);</c>.
/// </summary>
public sealed class RelayServer : IAsyncDisposable
{
    private readonly RelayServerOptions _options;
    private readonly IRelayAuthenticator _authenticator;
    private readonly ILogger _logger;
    private readonly ILogger _tunnelLogger;
    private readonly TimeProvider _timeProvider;
    private readonly ConcurrentDictionary<(string NodeId, string Name), PublishedMapping> _published = new();
    private readonly ConcurrentDictionary<string, ServerSession> _sessions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Task, bool> _tunnelTasks = new();
    private readonly SemaphoreSlim _mapLock = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly TunnelSettings _settings;
    private readonly DataChannelRegistry _dataChannels = new();
    private SslServerAuthenticationOptions? _tls;
    private ITimer? _retentionSweep;
    private PortAllocator? _allocator;
    private MappingStore? _store;
    private Socket? _listener;
    private Task? _acceptLoop;
    private int _state;
    private int _handshakes;

    /// <summary>Creates a relay; call <see cref="StartAsync"/> to listen.</summary>
    public RelayServer(RelayServerOptions options, IRelayAuthenticator authenticator, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(authenticator);
        _options = options;
        _authenticator = authenticator;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<RelayServer>();
        _tunnelLogger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("DeCloud.Relay.Tunnel");
        _timeProvider = timeProvider ?? TimeProvider.System;
        _settings = new TunnelSettings
        {
            InitialWindow = options.InitialStreamWindow,
            MaxWindow = options.MaxStreamWindow,
            MaxStreams = options.MaxStreamsPerTunnel,
            KeepAliveInterval = options.KeepAliveInterval,
            KeepAliveTimeout = options.KeepAliveTimeout,
        };
    }

    /// <summary>The bound control endpoint (with the real port when 0 was configured), once started.</summary>
    public IPEndPoint? ControlEndPoint { get; private set; }

    /// <summary>Ids of the nodes connected now.</summary>
    public IReadOnlyCollection<string> ConnectedNodes => _sessions.Keys.ToArray();

    /// <summary>Opens the database, reconciles stored mappings (re-binding their ports), and starts accepting tunnels.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            throw new InvalidOperationException("The relay server was already started.");
        }

        _options.Validate();
        if (_options.Certificate is { } certificate)
        {
            // Built once: the chain is resolved a single time (offline) and every handshake, tunnel or data connection,
            // shares one TLS context, which also lets nodes resume sessions instead of repeating the full handshake.
            _tls = new SslServerAuthenticationOptions { ServerCertificateContext = SslStreamCertificateContext.Create(certificate, additionalCertificates: null, offline: true) };
        }

        _allocator = new PortAllocator(_options.PortRangeStart, _options.PortRangeEnd, _options.ExcludedPorts, _options.MaxPortsPerNode);
        _store = new MappingStore(_options.DatabasePath);
        Reconcile();
        var listener = new Socket(_options.ControlEndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Bind(_options.ControlEndPoint);
            listener.Listen(512);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        ControlEndPoint = (IPEndPoint)listener.LocalEndPoint!;
        if (_options.MappingRetention != Timeout.InfiniteTimeSpan)
        {
            var period = TimeSpan.FromTicks(Math.Clamp(_options.MappingRetention.Ticks / 4, TimeSpan.FromSeconds(1).Ticks, TimeSpan.FromHours(1).Ticks));
            _retentionSweep = _timeProvider.CreateTimer(static s => _ = ((RelayServer)s!).ExpireUnclaimedAsync(), this, period, period);
        }

        _acceptLoop = Task.Run(AcceptLoopAsync, CancellationToken.None);
        Log.Started(_logger, ControlEndPoint, _options.Certificate is not null, _options.PortRangeStart, _options.PortRangeEnd);
        return Task.CompletedTask;
    }

    /// <summary>The mappings the relay holds, optionally for one node.</summary>
    public IReadOnlyList<RelayMapping> GetMappings(string? nodeId = null) =>
        _published.Values
            .Select(p => p.Record)
            .Where(r => nodeId is null || r.NodeId == nodeId)
            .OrderBy(r => r.PublicPort)
            .Select(r => new RelayMapping(r.Name, r.Protocol, PublicHost, r.PublicPort, r.TargetHost, r.TargetPort))
            .ToList();

    /// <summary>Removes a node's mapping at run time and releases its port; false when there was none.</summary>
    public Task<bool> RemoveMappingAsync(string nodeId, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(nodeId);
        ArgumentNullException.ThrowIfNull(name);
        return UnmapAsync(nodeId, name, cancellationToken);
    }

    /// <summary>Stops gracefully: tells every node to reconnect after <see cref="RelayServerOptions.GoAwayReconnectDelay"/>, then closes. Mappings stay stored.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _state, 2) != 1)
        {
            return;
        }

        _listener?.Dispose();
        _retentionSweep?.Dispose();
        var sessions = _sessions.Values.ToList();
        Log.GoingAway(_logger, sessions.Count, _options.GoAwayReconnectDelay);
        var goAway = new GoAwayMessage((uint)_options.GoAwayReconnectDelay.TotalMilliseconds, "relay shutting down").Encode();
        foreach (var session in sessions)
        {
            try
            {
                using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(2), _timeProvider);
                await session.Tunnel.SendAsync(FrameType.GoAway, 0, goAway, bound.Token).ConfigureAwait(false);
                await session.Tunnel.CompleteOutputAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RelayException or OperationCanceledException)
            {
            }
        }

        _stopping.Cancel();
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }

        await Task.WhenAll(_tunnelTasks.Keys).WaitAsync(cancellationToken).ConfigureAwait(false);
        foreach (var mapping in _published.Values)
        {
            await mapping.DisposeAsync().ConfigureAwait(false);
        }

        _published.Clear();
        _store?.Dispose();
    }

    /// <summary>Stops (see <see cref="StopAsync"/>) and releases everything.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _state) == 1)
        {
            await StopAsync().ConfigureAwait(false);
        }

        Interlocked.Exchange(ref _state, 2);
        _listener?.Dispose();
        _stopping.Dispose();
        _mapLock.Dispose();
    }

    internal int MaxPendingStreamOpens => _options.MaxPendingStreamOpens;

    /// <summary>Multiplexed streams of a connected node waiting for it to accept them (test seam).</summary>
    internal int PendingStreamOpens(string nodeId) => _sessions.TryGetValue(nodeId, out var session) ? session.PendingStreamOpens : 0;

    internal string PublicHost => _options.PublicHost ?? (_options.PublicAddress.Equals(IPAddress.Any) ? "0.0.0.0" : _options.PublicAddress.ToString());

    /// <summary>The data path the relay uses for a connected node's TCP streams, or null when the node is not connected (test seam).</summary>
    internal RelayStreamTransport? TransportOf(string nodeId) => _sessions.TryGetValue(nodeId, out var session) ? session.Transport : null;

    /// <summary>Data channels asked for and not yet connected (test seam).</summary>
    internal int PendingDataChannels => _dataChannels.Count;

    /// <summary>Connections to the control endpoint still in their handshake (test seam).</summary>
    internal int PendingHandshakes => Volatile.Read(ref _handshakes);

    internal PortAllocator Allocator => _allocator ?? throw new InvalidOperationException("The relay server is not started.");

    internal async Task<MapResultMessage> MapAsync(ServerSession session, MapRequestMessage request)
    {
        var fail = (string reason) =>
        {
            Log.MapRefused(_logger, session.NodeId, request.Name, reason);
            RelayMetrics.Error("map_refused");
            return new MapResultMessage(request.RequestId, false, 0, 0, reason);
        };
        if (request.Name.Length is 0 or > 200 || request.TargetHost.Length is 0 or > 255 || request.TargetPort == 0)
        {
            return fail("invalid request: name and target host must be non-empty and the target port non-zero");
        }

        await _mapLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var key = (session.NodeId, request.Name);
            var record = new StoredMapping(session.NodeId, request.Name, request.Protocol, 0, request.TargetHost, request.TargetPort,
                request.ProxyProtocol, request.BandwidthLimit, _timeProvider.GetUtcNow());
            if (_published.TryGetValue(key, out var existing))
            {
                if (existing.Record.Protocol == request.Protocol)
                {
                    var updated = record with { PublicPort = existing.Record.PublicPort };
                    if (existing.TryBind() == SocketError.Success)
                    {
                        // Always stored: UpdatedAt is when the node last claimed it, which retention counts from.
                        _store!.Upsert(updated);
                        existing.Record = updated;

                        var id = session.Attach(existing);
                        return new MapResultMessage(request.RequestId, true, id, (ushort)existing.Record.PublicPort, string.Empty);
                    }

                    Log.BindFailed(_logger, existing.Record.PublicPort, existing.Record.Protocol, "still in use by another process; choosing a new port");
                    Allocator.MarkBusy(session.NodeId, existing.Record.Protocol, existing.Record.PublicPort);
                }
                else
                {
                    Allocator.Release(session.NodeId, existing.Record.Protocol, existing.Record.PublicPort);
                }

                _published.TryRemove(key, out _);
                session.Forget(existing);
                await existing.DisposeAsync().ConfigureAwait(false);
            }

            int preferred = request.PreferredPort;
            for (var attempt = 0; attempt < 32; attempt++)
            {
                var status = Allocator.TryAllocate(session.NodeId, request.Protocol, preferred, out var port);
                switch (status)
                {
                    case AllocationStatus.QuotaExceeded:
                        _store!.Delete(session.NodeId, request.Name);
                        return fail($"node quota of {Allocator.MaxPortsPerNode} ports reached");
                    case AllocationStatus.RangeExhausted:
                        _store!.Delete(session.NodeId, request.Name);
                        return fail($"no free port left in {Allocator.First}-{Allocator.Last}");
                }

                var mapping = new PublishedMapping(record with { PublicPort = port }, _options, _timeProvider, _logger);
                var bind = mapping.TryBind();
                if (bind != SocketError.Success)
                {
                    Log.BindFailed(_logger, port, request.Protocol, bind.ToString());
                    Allocator.MarkBusy(session.NodeId, request.Protocol, port);
                    await mapping.DisposeAsync().ConfigureAwait(false);
                    preferred = 0;
                    continue;
                }

                try
                {
                    _store!.Upsert(mapping.Record);
                }
                catch (Exception ex) when (ex is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException)
                {
                    Allocator.Release(session.NodeId, request.Protocol, port);
                    await mapping.DisposeAsync().ConfigureAwait(false);
                    return fail("the relay could not store the mapping: " + ex.Message);
                }

                _published[key] = mapping;
                var mappingId = session.Attach(mapping);
                Log.Mapped(_logger, session.NodeId, request.Protocol, request.Name, port, $"{request.TargetHost}:{request.TargetPort}");
                return new MapResultMessage(request.RequestId, true, mappingId, (ushort)port, string.Empty);
            }

            return fail("every port tried was in use by other processes");
        }
        finally
        {
            _mapLock.Release();
        }
    }

    internal async Task<bool> UnmapAsync(string nodeId, string name, CancellationToken cancellationToken = default)
    {
        await _mapLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_published.TryGetValue((nodeId, name), out var mapping))
            {
                return false;
            }

            _store!.Delete(nodeId, name);
            _published.TryRemove((nodeId, name), out _);
            if (_sessions.TryGetValue(nodeId, out var session))
            {
                session.Forget(mapping);
            }

            await mapping.DisposeAsync().ConfigureAwait(false);
            Allocator.Release(nodeId, mapping.Record.Protocol, mapping.Record.PublicPort);
            Log.Unmapped(_logger, nodeId, name, mapping.Record.PublicPort);
            return true;
        }
        finally
        {
            _mapLock.Release();
        }
    }

    /// <summary>Removes stored mappings no node has held for <see cref="RelayServerOptions.MappingRetention"/> and frees their ports.</summary>
    internal async Task<int> ExpireUnclaimedAsync()
    {
        if (_options.MappingRetention == Timeout.InfiniteTimeSpan || Volatile.Read(ref _state) != 1)
        {
            return 0;
        }

        var now = _timeProvider.GetUtcNow();
        var expired = 0;
        foreach (var (key, mapping) in _published)
        {
            if (!mapping.IsAttached && now - mapping.Record.UpdatedAt >= _options.MappingRetention && !_sessions.ContainsKey(key.NodeId))
            {
                Log.MappingExpired(_logger, key.NodeId, key.Name, mapping.Record.PublicPort, _options.MappingRetention);
                try
                {
                    expired += await UnmapAsync(key.NodeId, key.Name).ConfigureAwait(false) ? 1 : 0;
                }
                catch (Exception ex) when (ex is ObjectDisposedException or InvalidOperationException or Microsoft.Data.Sqlite.SqliteException)
                {
                    return expired;
                }
            }
        }

        return expired;
    }

    /// <summary>The node left: its mappings' retention starts now.</summary>
    private async Task TouchMappingsAsync(string nodeId)
    {
        await _mapLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var now = _timeProvider.GetUtcNow();
            foreach (var (key, mapping) in _published)
            {
                if (key.NodeId == nodeId && !mapping.IsAttached)
                {
                    mapping.Record = mapping.Record with { UpdatedAt = now };
                    _store!.Upsert(mapping.Record);
                }
            }
        }
        catch (Exception ex) when (ex is ObjectDisposedException or InvalidOperationException or Microsoft.Data.Sqlite.SqliteException)
        {
        }
        finally
        {
            _mapLock.Release();
        }
    }

    private void Reconcile()
    {
        var stored = _store!.LoadAll(out var invalid);
        foreach (var (nodeId, name, problem) in invalid)
        {
            Log.StoredMappingDropped(_logger, nodeId, name, "invalid row: " + problem);
            _store.Delete(nodeId, name);
        }

        var count = 0;
        var now = _timeProvider.GetUtcNow();
        foreach (var record in stored)
        {
            if (_options.MappingRetention != Timeout.InfiniteTimeSpan && now - record.UpdatedAt >= _options.MappingRetention)
            {
                Log.MappingExpired(_logger, record.NodeId, record.Name, record.PublicPort, _options.MappingRetention);
                _store.Delete(record.NodeId, record.Name);
                continue;
            }

            var status = _allocator!.TryReserve(record.NodeId, record.Protocol, record.PublicPort);
            if (status != AllocationStatus.Allocated)
            {
                Log.StoredMappingDropped(_logger, record.NodeId, record.Name,
                    status == AllocationStatus.QuotaExceeded ? "over the node's quota" : $"port {record.PublicPort} is outside the range, excluded or held by another mapping");
                _store.Delete(record.NodeId, record.Name);
                continue;
            }

            var mapping = new PublishedMapping(record, _options, _timeProvider, _logger);
            var bind = mapping.TryBind();
            if (bind != SocketError.Success)
            {
                // Keep the reservation: the node gets this port back if it frees up, or a new one when it reconnects.
                Log.BindFailed(_logger, record.PublicPort, record.Protocol, bind.ToString());
            }

            _published[(record.NodeId, record.Name)] = mapping;
            count++;
        }

        Log.Reconciled(_logger, count);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener!.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                if (_stopping.IsCancellationRequested || ex is ObjectDisposedException)
                {
                    return;
                }

                continue;
            }

            if (Interlocked.Increment(ref _handshakes) > _options.MaxPendingHandshakes)
            {
                Interlocked.Decrement(ref _handshakes);
                Log.ConnectionShed(_logger, socket.RemoteEndPoint as IPEndPoint, $"{_options.MaxPendingHandshakes} connections are already in their handshake (MaxPendingHandshakes)");
                RelayMetrics.Error("handshake_limit");
                socket.LingerState = new LingerOption(true, 0);
                socket.Dispose();
                continue;
            }

            var task = Task.Run(() => RunConnectionAsync(socket));
            _tunnelTasks[task] = true;
            _ = task.ContinueWith(t => _tunnelTasks.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    /// <summary>
    /// Serves one connection to the control endpoint: TLS if configured, the server's Hello, then the node's first
    /// frame decides what it is: <see cref="FrameType.Auth"/> opens a tunnel, <see cref="FrameType.DataChannel"/>
    /// hands the connection to the stream waiting for it.
    /// </summary>
    private async Task RunConnectionAsync(Socket socket)
    {
        var remote = socket.RemoteEndPoint as IPEndPoint;
        socket.NoDelay = true;
        Stream transport = new NetworkStream(socket, ownsSocket: true);
        TunnelConnection? tunnel = null;
        ServerSession? session = null;
        var handedOff = false;
        var inHandshake = 1;
        void EndHandshake()
        {
            if (Interlocked.Exchange(ref inHandshake, 0) == 1)
            {
                Interlocked.Decrement(ref _handshakes);
            }
        }

        try
        {
            using var handshake = new CancellationTokenSource(_options.HandshakeTimeout, _timeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(handshake.Token, _stopping.Token);
            if (_tls is not null)
            {
                var ssl = new SslStream(transport, leaveInnerStreamOpen: false);
                transport = ssl;
                await ssl.AuthenticateAsServerAsync(_tls, linked.Token).ConfigureAwait(false);
            }

            var challenge = RandomNumberGenerator.GetBytes(32);
            await HandshakeFrames.WriteAsync(transport, FrameType.Hello, 0, new HelloMessage(FrameHeader.CurrentVersion, challenge).Encode(), linked.Token).ConfigureAwait(false);
            var (header, payload) = await HandshakeFrames.ReadAsync(transport, linked.Token).ConfigureAwait(false);
            if (header.Type == FrameType.DataChannel)
            {
                handedOff = AcceptDataChannel(socket, transport, remote, header, payload);
                return;
            }

            tunnel = new TunnelConnection(transport, _settings, isServer: true, _timeProvider, _tunnelLogger, remote?.ToString() ?? "?", socket);
            var auth = header.Type == FrameType.Auth ? AuthMessage.Decode(payload) : null;
            if (auth is null || auth.NodeId.Length is 0 or > 200)
            {
                await RefuseAsync(tunnel, remote, WireError.ProtocolError, $"expected an Auth or DataChannel frame, got {header.Type}").ConfigureAwait(false);
                return;
            }

            var decision = await _authenticator.AuthenticateAsync(new RelayAuthenticationContext(auth.NodeId, challenge, auth.Proof, remote), linked.Token).ConfigureAwait(false);
            if (!decision.Succeeded)
            {
                RelayMetrics.Connects.Add(1, new KeyValuePair<string, object?>("result", "auth_failed"));
                Log.TunnelRefused(_logger, remote, $"node '{auth.NodeId}': {decision.Reason}");
                await tunnel.SendAsync(FrameType.AuthResult, 0, new AuthResultMessage(false, decision.Reason, 0, string.Empty).Encode(), linked.Token).ConfigureAwait(false);
                await tunnel.CompleteOutputAsync().ConfigureAwait(false);
                return;
            }

            tunnel.Name = $"{auth.NodeId}@{remote}";
            var dedicated = _options.StreamTransport != RelayStreamTransport.Multiplexed && auth.Capabilities.HasFlag(NodeCapabilities.DedicatedConnections);
            session = new ServerSession(this, tunnel, auth.NodeId, remote, _options.StreamOpenTimeout, _logger, _dataChannels, dedicated);
            if (_sessions.TryGetValue(auth.NodeId, out var previous))
            {
                await previous.Tunnel.FailAsync(WireError.Replaced, "replaced by a new tunnel from the same node").ConfigureAwait(false);
            }

            _sessions[auth.NodeId] = session;
            await tunnel.SendAsync(FrameType.AuthResult, 0, new AuthResultMessage(true, string.Empty, (uint)_options.KeepAliveInterval.TotalMilliseconds, PublicHost).Encode(), linked.Token).ConfigureAwait(false);
            EndHandshake();
            RelayMetrics.Connects.Add(1, new KeyValuePair<string, object?>("result", "ok"));
            RelayMetrics.ActiveTunnels.Add(1);
            Log.NodeConnected(_logger, auth.NodeId, remote, session.Transport);
            try
            {
                var reason = await tunnel.RunAsync(session, _stopping.Token).ConfigureAwait(false);
                Log.NodeDisconnected(_logger, auth.NodeId, reason);
            }
            finally
            {
                RelayMetrics.ActiveTunnels.Add(-1);
            }
        }
        catch (RelayProtocolException ex)
        {
            tunnel ??= new TunnelConnection(transport, _settings, isServer: true, _timeProvider, _tunnelLogger, remote?.ToString() ?? "?", socket);
            await RefuseAsync(tunnel, remote, ex.Message.StartsWith("unsupported", StringComparison.Ordinal) ? WireError.UnsupportedVersion : WireError.ProtocolError, ex.Message).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or RelayException or System.Security.Authentication.AuthenticationException or SocketException or ObjectDisposedException)
        {
            if (ex is EndOfStreamException && inHandshake == 1)
            {
                // Closed after our Hello without sending a frame: a node closing a warm data connection it did not need, or a scanner.
                Log.ConnectionShed(_logger, remote, "closed by the peer before its first frame");
            }
            else if (ex is OperationCanceledException && _stopping.IsCancellationRequested)
            {
                // The relay is stopping: a connection still in its handshake (typically a node's warm data connection) just ends.
                Log.ConnectionShed(_logger, remote, "the relay is stopping");
            }
            else
            {
                RelayMetrics.Connects.Add(1, new KeyValuePair<string, object?>("result", "error"));
                Log.TunnelRefused(_logger, remote, ex is OperationCanceledException ? "handshake timed out" : ex.Message);
            }
        }
        finally
        {
            EndHandshake();
            if (session is not null)
            {
                session.DetachAll();
                if (!_stopping.IsCancellationRequested)
                {
                    await TouchMappingsAsync(session.NodeId).ConfigureAwait(false);
                }

                _sessions.TryRemove(new KeyValuePair<string, ServerSession>(session.NodeId, session));
            }

            if (tunnel is not null)
            {
                await tunnel.DisposeAsync().ConfigureAwait(false);
            }
            else if (!handedOff)
            {
                await transport.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>A node's dedicated data connection presented its channel id and nonce: hand it to the waiting stream, or say why not.</summary>
    private bool AcceptDataChannel(Socket socket, Stream transport, IPEndPoint? remote, FrameHeader header, byte[] payload)
    {
        var message = DataChannelMessage.Decode(payload);
        var claim = message is null ? (DataChannelClaim?)null : _dataChannels.Claim(header.StreamId, message.Nonce, new RawConnection(socket, transport) { AllowZeroCopy = _options.UseZeroCopy });
        var result = claim switch
        {
            null => "malformed",
            DataChannelClaim.Claimed => "ok",
            DataChannelClaim.WrongNonce => "wrong_nonce",
            DataChannelClaim.SessionClosed => "session_closed",
            _ => "unknown_channel",
        };
        RelayMetrics.DataConnections.Add(1, new KeyValuePair<string, object?>("result", result));
        if (claim == DataChannelClaim.Claimed)
        {
            return true;
        }

        RelayMetrics.Error("data_connection_" + result);
        Log.DataConnectionRefused(_logger, remote, header.StreamId, claim switch
        {
            null => "malformed DataChannel frame",
            DataChannelClaim.WrongNonce => "wrong nonce",
            DataChannelClaim.SessionClosed => "the tunnel that asked for it has closed",
            _ => "no such data channel is waiting (unknown, expired or already used)",
        });
        return false;
    }

    private async Task RefuseAsync(TunnelConnection tunnel, IPEndPoint? remote, WireError code, string reason)
    {
        RelayMetrics.Connects.Add(1, new KeyValuePair<string, object?>("result", "error"));
        Log.TunnelRefused(_logger, remote, reason);
        await tunnel.FailAsync(code, reason, drain: true).ConfigureAwait(false);
    }
}
