using DeCloud.Agent.Control;
using DeCloud.Agent.State;
using DeCloud.Core.Model;
using DeCloud.Protocol.V1;
using DeCloud.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>A public node's ports as kernel DNAT rules (DeCloud.Relay's direct mode), in network namespaces.</summary>
public sealed class AgentDnatEndToEndTests
{
    private const string Chain = "DCA9-DNAT";
    private const int PublicPort = 45000;

    [Fact]
    public async Task AllocatePublicPort_Dnat_ClientReachesVmThenRestartReconcilesWithoutDuplicatesThenReleaseRemoves()
    {
        await using var topology = await AgentDnatTopology.StartAsync();
        var dir = Directory.CreateTempSubdirectory("dch-dnat-").FullName;
        try
        {
            var vmId = VmId.New().ToString();
            using (var host = await StartAgentAsync(dir))
            {
                var executor = host.Services.GetRequiredService<CommandExecutor>();
                await RunAsync(executor, new Command { CommandId = "c1", Sequence = 1, CreateVm = new CreateVm { VmId = vmId, Resources = new Capacity { ComputePoints = 1, MemoryMib = 128 }, Start = true } }, AckStatus.Succeeded);
                var ack = await RunAsync(executor, Allocate("c2", 2, vmId, PublicPort, AgentDnatTopology.VmIp), AckStatus.Succeeded);
                Assert.Equal("dnat", ack.Result["forwarding"]);

                var reply = await AgentDnatTopology.ClientRoundTripAsync(PublicPort, "hello");
                Assert.Equal("vm-side:hello", reply.StandardOutput);
                Assert.Equal(1, await AgentDnatTopology.DnatRuleCountAsync(Chain, PublicPort));

                // Bad input: a port out of range, a target DNAT cannot reach. Rejected with the reason; the agent keeps going.
                var outOfRange = await RunAsync(executor, Allocate("c3", 3, vmId, 70000, AgentDnatTopology.VmIp), AckStatus.Rejected);
                Assert.Contains("70000", outOfRange.Error, StringComparison.Ordinal);
                var loopback = await RunAsync(executor, Allocate("c4", 4, vmId, PublicPort + 1, "127.0.0.1"), AckStatus.Rejected);
                Assert.Contains("127.0.0.1", loopback.Error, StringComparison.Ordinal);
                Assert.Single(host.Services.GetRequiredService<AgentState>().ListPorts());
                await host.StopAsync().Within();
            }

            // While the agent is down the rules keep forwarding (they are the kernel's). Someone flushes the chain (drift).
            Assert.Equal("vm-side:down", (await AgentDnatTopology.ClientRoundTripAsync(PublicPort, "down")).StandardOutput);
            (await ProcessRunner.ShAsync($"ip netns exec {AgentDnatTopology.Node} iptables -w -t nat -F {Chain}")).EnsureSuccess("flushing the chain");
            Assert.Equal(0, await AgentDnatTopology.DnatRuleCountAsync(Chain, PublicPort));

            using (var host = await StartAgentAsync(dir))
            {
                Assert.Equal(1, await AgentDnatTopology.DnatRuleCountAsync(Chain, PublicPort));
                Assert.Equal("vm-side:again", (await AgentDnatTopology.ClientRoundTripAsync(PublicPort, "again")).StandardOutput);
                await host.StopAsync().Within();
            }

            // A second restart with the rules in place: still exactly one.
            using (var host = await StartAgentAsync(dir))
            {
                Assert.Equal(1, await AgentDnatTopology.DnatRuleCountAsync(Chain, PublicPort));
                var executor = host.Services.GetRequiredService<CommandExecutor>();
                await RunAsync(executor, new Command { CommandId = "c5", Sequence = 5, ReleasePublicPort = new ReleasePublicPort { VmId = vmId, PublicPort = PublicPort, Protocol = "tcp" } }, AckStatus.Succeeded);
                Assert.Equal(0, await AgentDnatTopology.DnatRuleCountAsync(Chain, PublicPort));
                var refused = await AgentDnatTopology.ClientRoundTripAsync(PublicPort, "gone");
                Assert.NotEqual(0, refused.ExitCode);
                Assert.Empty(refused.StandardOutput);
                Assert.Empty(host.Services.GetRequiredService<AgentState>().ListPorts());
                await host.StopAsync().Within();
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<IHost> StartAgentAsync(string dir)
    {
        var host = AgentTierEndToEndTests.AgentHost(dir, "http://127.0.0.1:1",
            "--Agent:Hypervisor=simulated", "--Agent:PortForwarding=dnat", "--Agent:DnatChainPrefix=DCA9",
            $"--Agent:DnatIptablesCommand=ip netns exec {AgentDnatTopology.Node} iptables -w");
        await host.StartAsync().Within();
        await host.Services.GetRequiredService<AgentStatus>().Reconciled.Within(TimeSpan.FromMinutes(1), "the agent's start-up reconciliation");
        return host;
    }

    private static Command Allocate(string id, ulong seq, string vmId, int publicPort, string target) => new()
    {
        CommandId = id, Sequence = seq,
        AllocatePublicPort = new AllocatePublicPort { VmId = vmId, PublicPort = publicPort, TargetPort = AgentDnatTopology.ServicePort, Protocol = "tcp", TargetHost = target },
    };

    private static async Task<CommandAck> RunAsync(CommandExecutor executor, Command command, AckStatus expected)
    {
        var ack = await executor.ExecuteAsync(command, default).Within(TimeSpan.FromMinutes(1));
        Assert.True(ack.Status == expected, $"{command.KindCase} {command.CommandId}: expected {expected}, got {ack.Status} ({ack.Error})");
        return ack;
    }
}
