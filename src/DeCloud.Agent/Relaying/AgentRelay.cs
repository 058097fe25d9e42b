using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using DeCloud.Agent.State;
using DeCloud.Relay;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Agent.Relaying;

/// <summary>
/// The agent's two relay roles, both from DeCloud.Relay: on a public relay-capable node a
/// <see cref="RelayServer"/> that accepts tunnels from the NAT'd nodes the orchestrator granted; on a
/// NAT'd node a <see cref="RelayClient"/> to its assigned relay, which publishes the node's public ports.
/// </summary>
internal sealed class AgentRelay(IOptions<AgentOptions> options, AgentState state, ILoggerFactory loggerFactory, TimeProvider time) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, byte[]> _grants = new(StringComparer.Ordinal);
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
            new HmacChallengeAuthenticator(node => _grants.TryGetValue(node, out var s) ? s : null),
            loggerFactory,
            time);
        await _server.StartAsync(cancellationToken).ConfigureAwait(false);
        Endpoint = string.Create(CultureInfo.InvariantCulture, $"{o.PublicHost}:{_server.ControlEndPoint!.Port}");
    }

    /// <summary>The orchestrator allowed <paramref name="nodeId"/> to tunnel through this relay with <paramref name="secret"/>.</summary>
    public void Grant(string nodeId, byte[] secret) => _grants[nodeId] = secret;

    /// <summary>Connects (or reconnects) to the assigned relay and republishes every stored port.</summary>
    public async Task AssignAsync(string nodeId, string relayEndpoint, byte[] secret, CancellationToken cancellationToken)
    {
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
                new HmacChallengeCredentials(secret),
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
}
