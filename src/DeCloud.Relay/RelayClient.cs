using System.Collections.Concurrent;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DeCloud.Relay.Client;
using DeCloud.Relay.Diagnostics;
using DeCloud.Relay.Protocol;
using DeCloud.Relay.Tunnel;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Log = DeCloud.Relay.Client.Log;

namespace DeCloud.Relay;

/// <summary>
/// The node's end: keeps one tunnel to the relay up (reconnecting with exponential backoff and
/// jitter), publishes mappings (again after every reconnect, getting the same ports back) and connects
/// each forwarded stream to its target. Usable without DI: <c>await using var client = new RelayClient(options, credentials);</c>.
/// </summary>
public sealed class RelayClient : IAsyncDisposable
{
    private readonly RelayClientOptions _options;
    private readonly IRelayCredentials _credentials;
    private readonly ILogger _logger;
    private readonly ILogger _tunnelLogger;
    private readonly TimeProvider _timeProvider;
    private readonly ConcurrentDictionary<string, DesiredMapping> _desired = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly TunnelSettings _settings;
    private readonly Lock _lock = new();
    private TaskCompletionSource<ClientSession> _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ClientSession? _session;
    private Task? _loop;
    private TimeSpan? _goAwayDelay;
    private int _state;
    private int _connectCount;
    private Exception? _lastError;
    private RelayDialer? _dialer;

    /// <summary>Creates a client; call <see cref="StartAsync"/> to connect.</summary>
    public RelayClient(RelayClientOptions options, IRelayCredentials credentials, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(credentials);
        _options = options;
        _credentials = credentials;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<RelayClient>();
        _tunnelLogger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("DeCloud.Relay.Tunnel");
        _timeProvider = timeProvider ?? TimeProvider.System;
        _settings = new TunnelSettings
        {
            InitialWindow = options.InitialStreamWindow,
            MaxWindow = options.MaxStreamWindow,
            MaxStreams = options.MaxStreams,
            KeepAliveInterval = options.KeepAliveInterval,
            KeepAliveTimeout = options.KeepAliveTimeout,
        };
    }

    /// <summary>True while the tunnel is up and authenticated.</summary>
    public bool IsConnected => Volatile.Read(ref _session) is { } s && !s.Tunnel.Closed.IsCancellationRequested;

    /// <summary>Why the last connection attempt or tunnel failed (for example a <see cref="RelayAuthenticationException"/>), or null.</summary>
    public Exception? LastError => Volatile.Read(ref _lastError);

    /// <summary>How many times the tunnel was established (1 after the first connect).</summary>
    public int ConnectCount => Volatile.Read(ref _connectCount);

    /// <summary>The mappings published in the current (or last) tunnel.</summary>
    public IReadOnlyList<RelayMapping> Mappings => _desired.Values.Select(d => d.Published).OfType<RelayMapping>().OrderBy(m => m.PublicPort).ToList();

    /// <summary>Validates the options and starts the connect loop in the background.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        _options.Validate();
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            throw new InvalidOperationException("The relay client was already started.");
        }

        _loop = Task.Run(RunAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    /// <summary>Waits until the tunnel is up.</summary>
    public async Task WaitUntilConnectedAsync(CancellationToken cancellationToken = default) =>
        await WaitForSessionAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Publishes a mapping (now, and again after every reconnect) and returns its public endpoint. Waits for
    /// the tunnel if it is down. The same name gets the same public port back.
    /// </summary>
    /// <exception cref="RelayMappingException">The relay refused the mapping (quota, range exhausted, invalid).</exception>
    public async Task<RelayMapping> AddMappingAsync(RelayMappingRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        var desired = new DesiredMapping(request);
        var name = request.EffectiveName;
        _desired[name] = desired;
        while (true)
        {
            var session = await WaitForSessionAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                return await session.MapAsync(desired, cancellationToken).ConfigureAwait(false);
            }
            catch (RelayException ex) when (ex.IsTransient)
            {
                // The tunnel dropped while asking: ask again on the next one.
            }
            catch (RelayMappingException)
            {
                _desired.TryRemove(new KeyValuePair<string, DesiredMapping>(name, desired));
                throw;
            }
        }
    }

    /// <summary>Removes a mapping at run time; the relay releases its port. False when no such mapping was published.</summary>
    public async Task<bool> RemoveMappingAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var known = _desired.TryRemove(name, out _);
        while (true)
        {
            var session = await WaitForSessionAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                return await session.UnmapAsync(name, cancellationToken).ConfigureAwait(false) || known;
            }
            catch (RelayException ex) when (ex.IsTransient)
            {
            }
        }
    }

    /// <summary>
    /// Asks the relay to connect back to this node's public address (as the relay sees it) on <paramref name="port"/>:
    /// <see cref="RelayReachability.Reachable"/> means the node could serve directly (direct mode), anything else means it needs the relay.
    /// </summary>
    public async Task<RelayReachability> ProbeReachabilityAsync(int port, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        var session = await WaitForSessionAsync(cancellationToken).ConfigureAwait(false);
        var result = await session.ProbeAsync(port, cancellationToken).ConfigureAwait(false);
        return result.Reachable ? RelayReachability.Reachable : RelayReachability.TimedOut;
    }

    /// <summary>Closes the tunnel and stops reconnecting.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _state, 2) != 1)
        {
            return;
        }

        _stopping.Cancel();
        Volatile.Read(ref _session)?.Tunnel.Abort("client stopped");
        if (_loop is not null)
        {
            await _loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Stops the client.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        Interlocked.Exchange(ref _state, 2);
        _stopping.Dispose();
    }

    /// <summary>The delay before reconnect attempt <paramref name="attempt"/> (0-based): doubling from the minimum, capped, ±20 % jitter.</summary>
    internal static TimeSpan Backoff(int attempt, TimeSpan min, TimeSpan max, double random01)
    {
        var exponent = Math.Min(attempt, 30);
        var baseDelay = Math.Min(max.TotalMilliseconds, min.TotalMilliseconds * Math.Pow(2, exponent));
        var jittered = baseDelay * (0.8 + (0.4 * random01));
        return TimeSpan.FromMilliseconds(Math.Min(jittered, max.TotalMilliseconds));
    }

    /// <summary>Test seam: warm data connections idle or being dialled in the current tunnel.</summary>
    internal int WarmDataConnectionCount => Volatile.Read(ref _session)?.WarmDataConnectionCount ?? 0;

    /// <summary>Test seam: abort the current tunnel as if the network dropped.</summary>
    internal void DropTunnel(string reason) => Volatile.Read(ref _session)?.Tunnel.Abort(reason);

    private async Task<ClientSession> WaitForSessionAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (Volatile.Read(ref _state) != 1)
            {
                throw new InvalidOperationException("The relay client is not running; call StartAsync first.");
            }

            Task<ClientSession> wait;
            lock (_lock)
            {
                wait = _connected.Task;
            }

            var session = await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!session.Tunnel.Closed.IsCancellationRequested)
            {
                return session;
            }

            await Task.Yield();
        }
    }

    private async Task RunAsync()
    {
        var attempt = 0;
        var server = $"{_options.ServerHost}:{_options.ServerPort}";
        while (!_stopping.IsCancellationRequested)
        {
            string reason;
            var connected = false;
            try
            {
                var session = await ConnectAsync(_stopping.Token).ConfigureAwait(false);
                await using var disposeSession = session.ConfigureAwait(false);
                connected = true;
                attempt = 0;
                _goAwayDelay = null;
                Interlocked.Increment(ref _connectCount);
                Log.Connected(_logger, server, _options.NodeId);
                Volatile.Write(ref _session, session.Session);
                lock (_lock)
                {
                    _connected.TrySetResult(session.Session);
                }

                _ = RepublishAsync(session.Session);
                reason = await session.Tunnel.RunAsync(session.Session, _stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or IOException or RelayException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
            {
                reason = ex is OperationCanceledException ? "connect timed out" : ex.Message;
                Volatile.Write(ref _lastError, ex);
                RelayMetrics.Connects.Add(1, new KeyValuePair<string, object?>("result", ex is RelayAuthenticationException ? "auth_failed" : "error"));
            }

            lock (_lock)
            {
                if (_connected.Task.IsCompleted)
                {
                    _connected = new TaskCompletionSource<ClientSession>(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }

            Volatile.Write(ref _session, null);
            if (_stopping.IsCancellationRequested)
            {
                break;
            }

            var delay = _goAwayDelay ?? Backoff(attempt++, _options.ReconnectMinDelay, _options.ReconnectMaxDelay, Random.Shared.NextDouble());
            _goAwayDelay = null;
            if (connected)
            {
                Log.Disconnected(_logger, server, reason, delay);
            }
            else
            {
                Log.ConnectFailed(_logger, server, reason, delay);
            }

            try
            {
                await Task.Delay(delay, _timeProvider, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private async Task RepublishAsync(ClientSession session)
    {
        foreach (var desired in _desired.Values)
        {
            try
            {
                await session.MapAsync(desired, session.Tunnel.Closed).ConfigureAwait(false);
            }
            catch (RelayMappingException ex)
            {
                Log.ConnectFailed(_logger, desired.Request.EffectiveName, ex.Message, TimeSpan.Zero);
            }
            catch (Exception ex) when (ex is RelayException or OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task<ConnectedTunnel> ConnectAsync(CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(_options.ConnectTimeout, _timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        var dialer = _dialer ??= new RelayDialer(_options);
        using var activity = RelayMetrics.ActivitySource.StartActivity("relay.tunnel.connect", System.Diagnostics.ActivityKind.Client);
        activity?.SetTag("server.address", _options.ServerHost);
        activity?.SetTag("server.port", _options.ServerPort);
        activity?.SetTag("decloud.relay.node_id", _options.NodeId);
        activity?.SetTag("decloud.relay.tls", _options.UseTls);
        try
        {
            var connected = await ConnectCoreAsync(dialer, linked.Token).ConfigureAwait(false);
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Ok);
            return connected;
        }
        catch (Exception ex)
        {
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.Message);
            throw;
        }
    }

    private async Task<ConnectedTunnel> ConnectCoreAsync(RelayDialer dialer, CancellationToken cancellationToken)
    {
        var connection = await dialer.DialAsync(cancellationToken).ConfigureAwait(false);
        var socket = connection.Socket;
        var transport = connection.Stream;
        TunnelConnection? tunnel = null;
        try
        {
            tunnel = new TunnelConnection(transport, _settings, isServer: false, _timeProvider, _tunnelLogger, $"relay {_options.ServerHost}:{_options.ServerPort}", socket);
            var (header, payload) = await tunnel.ReadFrameAsync(cancellationToken).ConfigureAwait(false);
            if (header.Type == FrameType.Error)
            {
                throw new RelayProtocolException($"The relay refused the tunnel: {ErrorMessage.Decode(payload)?.Message}.");
            }

            var hello = header.Type == FrameType.Hello ? HelloMessage.Decode(payload) : null;
            if (hello is null || hello.Version != FrameHeader.CurrentVersion)
            {
                throw new RelayProtocolException($"Expected a version {FrameHeader.CurrentVersion} Hello from the relay, got {header.Type}.");
            }

            var proof = await _credentials.CreateProofAsync(_options.NodeId, hello.Challenge, cancellationToken).ConfigureAwait(false);
            var capabilities = _options.EffectiveStreamTransport == RelayStreamTransport.DedicatedConnection ? NodeCapabilities.DedicatedConnections : NodeCapabilities.None;
            await tunnel.SendAsync(FrameType.Auth, 0, new AuthMessage(_options.NodeId, proof.ToArray(), capabilities).Encode(), cancellationToken).ConfigureAwait(false);
            (header, payload) = await tunnel.ReadFrameAsync(cancellationToken).ConfigureAwait(false);
            var result = header.Type == FrameType.AuthResult ? AuthResultMessage.Decode(payload) : null;
            if (result is null)
            {
                throw new RelayProtocolException($"Expected an AuthResult from the relay, got {header.Type}.");
            }

            if (!result.Accepted)
            {
                throw new RelayAuthenticationException($"The relay refused node '{_options.NodeId}': {result.Reason}.");
            }

            RelayMetrics.Connects.Add(1, new KeyValuePair<string, object?>("result", "ok"));
            var session = new ClientSession(tunnel, string.IsNullOrEmpty(result.PublicHost) || result.PublicHost == "0.0.0.0" ? _options.ServerHost : result.PublicHost,
                _options, _logger, OnGoAway, dialer);
            return new ConnectedTunnel(tunnel, session);
        }
        catch
        {
            if (tunnel is not null)
            {
                await tunnel.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                await transport.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    private void OnGoAway(TimeSpan delay, string reason)
    {
        _goAwayDelay = delay;
        Log.GoingAway(_logger, reason, delay);
    }

    private sealed class ConnectedTunnel(TunnelConnection tunnel, ClientSession session) : IAsyncDisposable
    {
        public TunnelConnection Tunnel { get; } = tunnel;

        public ClientSession Session { get; } = session;

        public async ValueTask DisposeAsync()
        {
            Session.Dispose();
            await Tunnel.DisposeAsync().ConfigureAwait(false);
        }
    }
}
