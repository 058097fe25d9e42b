using System.Net;
using System.Net.Sockets;
using System.Text;
using DeCloud.Agent.Control;
using DeCloud.Agent.Security;
using DeCloud.Core.Model;
using DeCloud.Hosts.Tests.Unit;
using DeCloud.Relay;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>
/// The agent relay role's authenticator in a real <see cref="RelayServer"/> on loopback, with real <see cref="RelayClient"/>s
/// presenting relay tokens: a node cannot open a tunnel as another node, so it cannot take over that node's mappings.
/// </summary>
public sealed class AgentAuthRelayTakeoverTests : IAsyncDisposable
{
    private const string KeyA = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    private const string KeyB = "8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f";

    private readonly string _dir = Directory.CreateTempSubdirectory("dh9a-takeover-").FullName;
    private readonly NodeId _relayId = NodeId.FromMachine("dh9a-relay", WalletAddress.Parse("0x00000000000000000000000000000000000000aa"));
    private readonly AgentIdentity _a = AgentAuthTestKit.Identity(KeyA, "dh9a-node-a");
    private readonly AgentIdentity _b = AgentAuthTestKit.Identity(KeyB, "dh9a-node-b");
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly AgentAuthTestKit _kit;

    public AgentAuthRelayTakeoverTests() => _kit = new AgentAuthTestKit(_dir, _relayId, TimeProvider.System);

    public async ValueTask DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }

        _kit.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task RelayTokens_AnotherNodeClaimingAOrUsingItsToken_RefusedAndAsMappingStaysAs()
    {
        var first = HostProcess.FreePort();
        var server = Own(new RelayServer(new RelayServerOptions
        {
            ControlEndPoint = new IPEndPoint(IPAddress.Loopback, 0),
            PublicAddress = IPAddress.Loopback,
            PortRangeStart = first,
            PortRangeEnd = first + 20,
            DatabasePath = Path.Combine(_dir, "relay.db"),
        }, _kit.RelayAuthenticator));
        await server.StartAsync().Within();
        var control = server.ControlEndPoint!.Port;

        // Node A, with its own token, publishes a port to its service.
        using var serviceA = new TcpListener(IPAddress.Loopback, 0);
        serviceA.Start();
        _ = AnswerAsync(serviceA, "node A's service");
        var a = Own(Client(control, _a, _a.NodeId.Value, Token(_a)));
        await a.StartAsync().Within();
        await a.WaitUntilConnectedAsync().Within();
        var mapping = await a.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", ((IPEndPoint)serviceA.LocalEndpoint).Port) { Name = "web" }).Within();
        Assert.Equal("node A's service", await ReadFromAsync(mapping.PublicPort));

        // Node B, with a valid token for itself, claims to be A: refused, A's tunnel is not replaced.
        var claimsA = Own(Client(control, _b, _a.NodeId.Value, Token(_b)));
        await claimsA.StartAsync().Within();
        Assert.Contains($"is for node {_b.NodeId.Value}", (await RefusedAsync(claimsA)).Message, StringComparison.Ordinal);

        // Node B replays A's token (seen on the wire) but cannot sign A's challenge: refused.
        var stolen = Own(Client(control, _b, _a.NodeId.Value, Token(_a)));
        await stolen.StartAsync().Within();
        Assert.Contains("not signed by the operator wallet", (await RefusedAsync(stolen)).Message, StringComparison.Ordinal);

        // Node B as itself is welcome, but gets its own port, not A's.
        using var serviceB = new TcpListener(IPAddress.Loopback, 0);
        serviceB.Start();
        _ = AnswerAsync(serviceB, "node B's service");
        var b = Own(Client(control, _b, _b.NodeId.Value, Token(_b)));
        await b.StartAsync().Within();
        await b.WaitUntilConnectedAsync().Within();
        var bMapping = await b.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", ((IPEndPoint)serviceB.LocalEndpoint).Port)
        {
            Name = "web",
            PreferredPublicPort = mapping.PublicPort,
        }).Within();
        Assert.NotEqual(mapping.PublicPort, bMapping.PublicPort);
        Assert.Equal("node B's service", await ReadFromAsync(bMapping.PublicPort));

        Assert.True(a.IsConnected);
        Assert.Equal(1, a.ConnectCount);
        Assert.Equal(mapping.PublicPort, Assert.Single(server.GetMappings(_a.NodeId.Value)).PublicPort);
        Assert.Equal("node A's service", await ReadFromAsync(mapping.PublicPort));
    }

    private T Own<T>(T owned)
        where T : IAsyncDisposable
    {
        _owned.Add(owned);
        return owned;
    }

    private string Token(AgentIdentity node) => _kit.Issuer.IssueRelayToken(node.NodeId, node.Wallet, _relayId.Value, TimeSpan.FromMinutes(10)).Token;

    private RelayClient Client(int port, AgentIdentity signer, string claimedNode, string token)
    {
        var credentials = new RelayTokenCredentials(signer);
        credentials.Update(_relayId.Value, token);
        return new RelayClient(new RelayClientOptions
        {
            ServerHost = "127.0.0.1",
            ServerPort = port,
            NodeId = claimedNode,
            ReconnectMinDelay = TimeSpan.FromSeconds(5),
        }, credentials);
    }

    private static async Task<RelayAuthenticationException> RefusedAsync(RelayClient client)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (client.LastError is not RelayAuthenticationException)
        {
            await Task.Delay(20, limit.Token);
        }

        Assert.False(client.IsConnected);
        return (RelayAuthenticationException)client.LastError;
    }

    private static async Task AnswerAsync(TcpListener listener, string text)
    {
        while (true)
        {
            using var socket = await listener.AcceptSocketAsync();
            await socket.SendAsync(Encoding.UTF8.GetBytes(text));
            socket.Shutdown(SocketShutdown.Both);
        }
    }

    private static async Task<string> ReadFromAsync(int port)
    {
        using var user = new TcpClient();
        await user.ConnectAsync(IPAddress.Loopback, port).Within();
        using var reader = new StreamReader(user.GetStream(), Encoding.UTF8);
        return await reader.ReadToEndAsync().Within();
    }
}
