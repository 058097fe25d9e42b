using System.Globalization;
using System.Net;
using DeCloud.Agent.Security;
using DeCloud.Agent.State;
using DeCloud.Protocol.V1;
using DeCloud.Relay;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Agent.Relaying;

/// <summary>
/// The agent's two relay roles, both from DeCloud.Relay: on a public relay-capable node a
/// <see cref="RelayServer"/> that accepts tunnels only with a relay token the orchestrator issued to that very node
/// for this relay (<see cref="RelayTokenAuthenticator"/>); on a NAT'd node a <see cref="RelayClient"/> to its assigned
/// relay, authenticated with its relay token (<see cref="RelayTokenCredentials"/>), which publishes the node's public ports.
/// </summary>
internal sealed partial class AgentRelay(
    IOptions<AgentOptions> options,
    AgentState state,
    RelayTokenAuthenticator authenticator,
    RelayTokenCredentials credentials,
    ILoggerFactory loggerFactory,
    TimeProvider time) : IAsyncDisposable
{
    private readonly ILogger _logger = loggerFactory.CreateLogger<AgentRelay>();
    private readonly SemaphoreSlim _gate = new(1, 1);
    private RelayServer? _server;
    private RelayClient? _client;

    /// <summary>host:port of this node's relay control listener, once started.</summary>
    public string Endpoint { get; private set; } = string.Empty;

    /// <summary>Starts the relay server when this node is relay-capable.</summary>
    public async Task StartServerAsync(string dataDirectory, CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (!o.RelayCapable || _server is not null)
        {
            return;
        }

        var address = IPAddress.TryParse(o.PublicHost, out var ip) ? ip : IPAddress.Any;
        _server = new RelayServer(
            new RelayServerOptions
            {
                ControlEndPoint = new IPEndPoint(address, o.RelayControlPort),
                PublicAddress = address,
                PublicHost = o.PublicHost,
                DatabasePath = Path.Combine(dataDirectory, "relay.db"),
            },
            authenticator,
            loggerFactory,
            time);
        await _server.StartAsync(cancellationToken).ConfigureAwait(false);
        Endpoint = string.Create(CultureInfo.InvariantCulture, $"{o.PublicHost}:{_server.ControlEndPoint!.Port}");
    }

    /// <summary>
    /// The orchestrator's HMAC grant for <paramref name="nodeId"/>. Not used: this relay role accepts tunnels only with the
    /// node's relay token, which names the node and this relay and needs no per-node state here.
    /// </summary>
    public void Grant(string nodeId, byte[] secret) => Log.GrantIgnored(_logger, nodeId, secret.Length);

    /// <summary>
    /// Takes relay tokens from the orchestrator's messages, before they are handled: the one in a
    /// <c>RelayAssignment</c> (so the tunnel it opens presents it) and each <c>RelayTokenRenewal</c> (used from the next
    /// tunnel (re)connect on).
    /// </summary>
    public void Observe(OrchestratorMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        switch (message.BodyCase)
        {
            case OrchestratorMessage.BodyOneofCase.RelayAssignment when message.RelayAssignment.RelayToken.Length > 0:
                credentials.Update(message.RelayAssignment.RelayNodeId, message.RelayAssignment.RelayToken);
                break;
            case OrchestratorMessage.BodyOneofCase.RelayAssignment:
                Log.NoRelayToken(_logger, message.RelayAssignment.RelayNodeId);
                break;
            case OrchestratorMessage.BodyOneofCase.RelayTokenRenewal when message.RelayTokenRenewal.Token.Length > 0:
                credentials.Update(message.RelayTokenRenewal.RelayNodeId, message.RelayTokenRenewal.Token);
                Log.RelayTokenRenewed(_logger, message.RelayTokenRenewal.RelayNodeId, DateTimeOffset.FromUnixTimeMilliseconds(message.RelayTokenRenewal.ExpiresAtUnixMs));
                break;
        }
    }

    /// <summary>Connects (or reconnects) to the assigned relay with the node's relay token and republishes every stored port.</summary>
    /// <param name="nodeId">This node's id.</param>
    /// <param name="relayEndpoint">host:port of the relay's control listener.</param>
    /// <param name="secret">The assignment's HMAC secret: not used (the relay checks the relay token, see <see cref="Observe"/>).</param>
    /// <param name="cancellationToken">Cancels the connect.</param>
    public async Task AssignAsync(string nodeId, string relayEndpoint, byte[] secret, CancellationToken cancellationToken)
    {
        _ = secret;
        var colon = relayEndpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(relayEndpoint.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            throw new ArgumentException($"relay endpoint '{relayEndpoint}' is not host:port.");
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_client is not null)
            {
                await _client.DisposeAsync().ConfigureAwait(false);
            }

            _client = new RelayClient(
                new RelayClientOptions { ServerHost = relayEndpoint[..colon], ServerPort = port, NodeId = nodeId },
                credentials,
                loggerFactory,
                time);
            await _client.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }

        foreach (var p in state.ListPorts())
        {
            await PublishAsync(p, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Publishes a port on the relay; returns the relay's public port.</summary>
    public async Task<int> PublishAsync(LocalPort port, CancellationToken cancellationToken)
    {
        var client = _client ?? throw new InvalidOperationException("this NAT'd node has no relay assignment yet.");
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(TimeSpan.FromSeconds(30));
        await client.WaitUntilConnectedAsync(bound.Token).ConfigureAwait(false);
        var mapping = await client.AddMappingAsync(
            new RelayMappingRequest(RelayProtocol.Tcp, port.TargetHost, port.TargetPort)
            {
                Name = "port-" + port.PublicPort.ToString(CultureInfo.InvariantCulture),
                PreferredPublicPort = port.PublicPort,
            },
            bound.Token).ConfigureAwait(false);
        return mapping.PublicPort;
    }

    public async Task UnpublishAsync(int publicPort, CancellationToken cancellationToken)
    {
        if (_client is { } c)
        {
            await c.RemoveMappingAsync("port-" + publicPort.ToString(CultureInfo.InvariantCulture), cancellationToken).ConfigureAwait(false);
        }
    }

    public bool IsPublished(int publicPort) =>
        _client is { IsConnected: true } c && c.Mappings.Any(m => m.Name == "port-" + publicPort.ToString(CultureInfo.InvariantCulture));

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync().ConfigureAwait(false);
        }

        if (_server is not null)
        {
            await _server.DisposeAsync().ConfigureAwait(false);
        }

        _gate.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(1420, LogLevel.Debug, "HMAC relay grant for node {NodeId} ({Bytes} bytes) ignored: tunnels into this relay need the node's relay token.")]
        public static partial void GrantIgnored(ILogger logger, string nodeId, int bytes);

        [LoggerMessage(1421, LogLevel.Warning, "The relay assignment to {RelayNodeId} carries no relay token; the relay will refuse the tunnel until the orchestrator sends one.")]
        public static partial void NoRelayToken(ILogger logger, string relayNodeId);

        [LoggerMessage(1422, LogLevel.Information, "Relay token for relay {RelayNodeId} renewed (expires {ExpiresAt:O}).")]
        public static partial void RelayTokenRenewed(ILogger logger, string relayNodeId, DateTimeOffset expiresAt);
    }
}
