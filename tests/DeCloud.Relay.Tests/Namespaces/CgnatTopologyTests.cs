using System.Text.RegularExpressions;
using DeCloud.Testing;
using static DeCloud.Relay.Tests.Namespaces.NamespaceTopology;

namespace DeCloud.Relay.Tests.Namespaces;

[CollectionDefinition(nameof(NamespaceCollection), DisableParallelization = true)]
public sealed class NamespaceCollection : ICollectionFixture<NamespaceTopology>;

/// <summary>The relay across a real carrier NAT: a home node behind MASQUERADE, a relay in public, a client on the internet.</summary>
[Collection(nameof(NamespaceCollection))]
public sealed partial class CgnatTopologyTests(NamespaceTopology topology)
{
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(2);

    [GeneratedRegex(@"^PUBLIC (\w+) [^:]+:(\d+) -> (.+)$")]
    private static partial Regex PublicLine();

    private NamespaceProcess StartRelay(string db, params string[] extra) =>
        Start(Public, Dotnet, [SampleDll, "server", "--control", "0.0.0.0:7835", "--ports", "40000-40100", "--secret", Secret,
            "--db", db, "--public-host", RelayPublicIp, .. extra]);

    private static NamespaceProcess StartNode(params string[] targets) =>
        Start(Home, Dotnet, [SampleDll, "client", "--server", $"{RelayControlIp}:7835", "--node", "home-1", "--secret", Secret, .. targets]);

    private static async Task<int> PublicPortAsync(NamespaceProcess node, string protocol)
    {
        var line = await node.WaitForLineAsync("PUBLIC " + protocol, Bound);
        return int.Parse(PublicLine().Match(line).Groups[2].Value);
    }

    private static NamespaceProcess StartEcho(string ns, string listen) => Start(ns, "socat", [listen, "EXEC:cat"]);

    private static async Task<string> InternetTcpAsync(string host, int port, string text, int timeoutSeconds = 5)
    {
        var result = await ExecAsync(Internet, $"echo {text} | timeout {timeoutSeconds + 2} socat -T{timeoutSeconds} - TCP:{host}:{port},connect-timeout={timeoutSeconds}");
        return result.ExitCode == 0 ? result.StandardOutput.Trim() : $"failed({result.ExitCode}): {result.StandardError.Trim()}";
    }

    private static async Task<string> InternetTcpEventuallyAsync(string host, int port, string text)
    {
        var deadline = DateTime.UtcNow + Bound;
        string last;
        do
        {
            last = await InternetTcpAsync(host, port, text);
            if (last == text)
            {
                return last;
            }

            await Task.Delay(500);
        }
        while (DateTime.UtcNow < deadline);
        return last;
    }

    [Fact]
    public async Task HomeNode_NotReachableDirectly_ReachableThroughRelayOverTcpAndUdp()
    {
        topology.RequireTopology();
        await using var tcpEcho = StartEcho(Home, "TCP-LISTEN:9000,fork,reuseaddr");
        await using var udpEcho = StartEcho(Home, "UDP4-RECVFROM:9001,fork");
        await using var relay = StartRelay(Path.Combine(topology.WorkDir, "reach.db"));
        await relay.WaitForLineAsync("LISTENING", Bound);
        await using var node = StartNode("tcp:127.0.0.1:9000", "udp:127.0.0.1:9001", "--probe", "9000");
        var tcpPort = await PublicPortAsync(node, "tcp");
        var udpPort = await PublicPortAsync(node, "udp");

        // Directly: neither the carrier NAT's public address nor the private home address answers.
        Assert.StartsWith("failed", await InternetTcpAsync(CgnPublicIp, 9000, "direct", 2), StringComparison.Ordinal);
        Assert.StartsWith("failed", await InternetTcpAsync(HomeIp, 9000, "direct", 2), StringComparison.Ordinal);

        // The relay's connect-back probe agrees: the node needs the relay.
        Assert.NotEqual("REACHABILITY Reachable", await node.WaitForLineAsync("REACHABILITY", Bound));

        // Through the relay: TCP and UDP.
        Assert.Equal("via-relay", await InternetTcpEventuallyAsync(RelayPublicIp, tcpPort, "via-relay"));
        var udp = await ExecAsync(Internet, $"echo udp-via-relay | socat -T3 - UDP4:{RelayPublicIp}:{udpPort}");
        Assert.Equal("udp-via-relay", udp.StandardOutput.Trim());
    }

    [Fact]
    public async Task LinkDownAndRelayRestart_NodeKeepsTheSamePublicPorts()
    {
        topology.RequireTopology();
        var db = Path.Combine(topology.WorkDir, "survive.db");
        await using var tcpEcho = StartEcho(Home, "TCP-LISTEN:9100,fork,reuseaddr");
        var relay = StartRelay(db);
        await relay.WaitForLineAsync("LISTENING", Bound);
        await using var node = StartNode("tcp:127.0.0.1:9100");
        var port = await PublicPortAsync(node, "tcp");
        Assert.Equal("before", await InternetTcpEventuallyAsync(RelayPublicIp, port, "before"));

        // The carrier link drops long enough for keepalives to declare the tunnel dead, then returns.
        (await ExecAsync(Cgn, "ip link set dcr-cgn-w down")).EnsureSuccess("link down");
        await Task.Delay(TimeSpan.FromSeconds(8));
        (await ExecAsync(Cgn, "ip link set dcr-cgn-w up && ip route replace default via " + RelayControlIp)).EnsureSuccess("link up");
        Assert.Equal("after-link", await InternetTcpEventuallyAsync(RelayPublicIp, port, "after-link"));

        // The relay process dies and restarts on the same database: the node gets the same port back.
        await relay.DisposeAsync();
        await using var restarted = StartRelay(db);
        await restarted.WaitForLineAsync("LISTENING", Bound);
        Assert.Equal("after-restart", await InternetTcpEventuallyAsync(RelayPublicIp, port, "after-restart"));
    }

    [Fact]
    public async Task ProxyProtocol_TargetSeesTheInternetClientAddress()
    {
        topology.RequireTopology();
        var script = Path.Combine(topology.WorkDir, "proxy_target.py");
        await File.WriteAllTextAsync(script, """
            import socket, struct
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 9200)); s.listen(16)
            while True:
                c, _ = s.accept()
                h = b""
                while len(h) < 16: h += c.recv(16 - len(h))
                n = struct.unpack("!H", h[14:16])[0]
                body = b""
                while len(body) < n: body += c.recv(n - len(body))
                src = socket.inet_ntoa(body[0:4]) if (h[13] >> 4) == 1 else "not-ipv4"
                c.sendall((src + "\n").encode()); c.close()
            """);
        await using var target = Start(Home, "python3", script);
        await using var relay = StartRelay(Path.Combine(topology.WorkDir, "proxy.db"));
        await relay.WaitForLineAsync("LISTENING", Bound);
        await using var node = StartNode("--proxy", "tcp:127.0.0.1:9200");
        var port = await PublicPortAsync(node, "tcp");
        Assert.Equal(InternetIp, await InternetTcpEventuallyAsync(RelayPublicIp, port, InternetIp));
    }

    [Fact]
    public async Task DirectMode_DnatRules_ForwardWithoutAPumpAndSurviveReconcile()
    {
        topology.RequireTopology();
        (await ExecAsync(Public, "ip addr replace 10.231.9.1/32 dev lo")).EnsureSuccess("vm address");
        await using var vm = StartEcho(Public, "TCP-LISTEN:9300,bind=10.231.9.1,fork,reuseaddr");
        var options = new DirectModeOptions
        {
            PublicAddress = System.Net.IPAddress.Parse(RelayPublicIp),
            PortRangeStart = 45000,
            PortRangeEnd = 45010,
            DatabasePath = Path.Combine(topology.WorkDir, "direct.db"),
        };
        options.IptablesCommand.Clear();
        foreach (var part in new[] { "ip", "netns", "exec", Public, "iptables", "-w" })
        {
            options.IptablesCommand.Add(part);
        }

        RelayMapping mapping;
        await using (var direct = new DirectDnatForwarder(options))
        {
            await direct.StartAsync().Within(Bound);
            mapping = await direct.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "10.231.9.1", 9300) { Name = "vm-echo" }).Within(Bound);
        }

        Assert.Equal("dnat", await InternetTcpEventuallyAsync(RelayPublicIp, mapping.PublicPort, "dnat"));

        // Drift: someone flushes our chain. A restart reconciles it from the store.
        (await ExecAsync(Public, "iptables -w -t nat -F DCR-DNAT")).EnsureSuccess("flush");
        Assert.StartsWith("failed", await InternetTcpAsync(RelayPublicIp, mapping.PublicPort, "flushed", 2), StringComparison.Ordinal);
        await using (var restarted = new DirectDnatForwarder(options))
        {
            await restarted.StartAsync().Within(Bound);
            Assert.Equal(mapping.PublicPort, Assert.Single(restarted.Mappings).PublicPort);
        }

        Assert.Equal("reconciled", await InternetTcpEventuallyAsync(RelayPublicIp, mapping.PublicPort, "reconciled"));
        var rules = await ExecAsync(Public, "iptables -w -t nat -S DCR-DNAT");
        Assert.Contains("dcr:vm-echo", rules.StandardOutput, StringComparison.Ordinal);
    }
}
