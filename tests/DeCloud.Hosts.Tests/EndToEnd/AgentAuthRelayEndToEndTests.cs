using System.Net;
using System.Net.Sockets;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>
/// Orchestrator, a public relay-capable agent and a NAT'd agent as separate processes: the NAT'd agent's tunnel is
/// authenticated with the relay token the orchestrator issued it, which the orchestrator renews before it expires.
/// </summary>
public sealed class AgentAuthRelayEndToEndTests
{
    [Fact]
    public async Task NatAgent_RelayTokenAuth_PortReachableThroughRelayAndTokenRenewed()
    {
        await using var cloud = await Cloud.StartWithAsync("--Orchestrator:RelayTokens:Lifetime=00:00:15");
        var relay = cloud.StartAgent("dh9a-relay", cloud.NewKeyFile("dh9a-relay"), false, "--Agent:RelayCapable=true", "--Agent:RelayControlPort=0", "--Agent:PublicHost=127.0.0.1");
        var nat = cloud.StartAgent("dh9a-nat", cloud.NewKeyFile("dh9a-nat"), true);
        var natNode = await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.BehindNat && n.Online && n.RelayNodeId is not null),
            "a relay for the NAT'd node");

        // The relay role accepted the NAT'd node's tunnel because of its relay token (no shared secret anywhere).
        await relay.WaitForLineAsync($"Relay tunnel of node {natNode.Id} authenticated with relay token");
        Assert.DoesNotContain("refused", relay.Output, StringComparison.OrdinalIgnoreCase);

        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        _ = TcpEcho.ServeAsync(echo);
        var client = await cloud.SignInAsync();
        var vm = await client.CreateVmAsync(new { name = "dh9a-behind-nat", computePoints = 1, memoryMiB = 256, storageGiB = 1, qualityTier = "Burstable", nodeId = natNode.Id },
            CancellationToken.None).Within();
        var target = ((IPEndPoint)echo.LocalEndpoint).Port;
        await client.OpenPortAsync(vm.Id, target, CancellationToken.None).Within();
        // Found by its target: when the allocated public port is taken on the relay host (other tests' relays run at
        // the same time), the relay binds another one and the listing shows that.
        var port = await cloud.EventuallyAsync(async () =>
            (await client.ListPortsAsync(vm.Id, CancellationToken.None)).SingleOrDefault(p => p.TargetPort == target && p.State == "open"), "the relayed port to open");
        Assert.Equal(natNode.RelayNodeId, port.ViaRelayNodeId);
        Assert.Equal("through the relay with a token", await TcpEcho.RoundTripAsync(port.Host, port.PublicPort, "through the relay with a token"));

        // With a 15 s lifetime the orchestrator sends a fresh token once 5 s are left.
        await nat.WaitForLineAsync($"Relay token for relay {natNode.RelayNodeId} renewed", TimeSpan.FromSeconds(60));
        Assert.Contains("Relay token (renew)", cloud.Orchestrator.Output, StringComparison.Ordinal);
    }
}
