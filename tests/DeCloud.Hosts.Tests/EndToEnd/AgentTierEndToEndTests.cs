using System.Xml.Linq;
using DeCloud.Agent;
using DeCloud.Agent.Control;
using DeCloud.Agent.Hypervisors;
using DeCloud.Agent.State;
using DeCloud.Core.Model;
using DeCloud.Protocol.V1;
using DeCloud.Testing;
using DeCloud.Virtualization.Libvirt;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>
/// Tiers applied at the hypervisor: the orchestrator runs as a process, the agent in this process on libvirt's
/// test driver (test:///default is shared by every connection of one process), so the test reads back the very
/// domain the agent defined.
/// </summary>
public sealed class AgentTierEndToEndTests
{
    private static void RequireLibvirt() =>
        RealDependency.Require(File.Exists("/usr/lib/x86_64-linux-gnu/libvirt.so.0") || File.Exists("/usr/lib64/libvirt.so.0"), "libvirt0 (libvirt.so.0)");

    [Fact]
    public async Task CreateVm_BurstableBasicThroughApi_DomainHasCputuneAndNicBandwidth()
    {
        RequireLibvirt();
        await using var cloud = await Cloud.StartAsync();
        using var agent = await StartInProcessAgentAsync(cloud, "tier");
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.Online), "the in-process agent to register");
        using var client = await cloud.SignInAsync();

        var vm = await client.CreateVmAsync(new { name = "tiered", computePoints = 2, memoryMiB = 256, storageGiB = 1, qualityTier = "Burstable", bandwidthTier = "Basic" }, default).Within();
        await cloud.EventuallyAsync(async () => (await client.GetVmAsync(vm.Id, default)) is { PowerState: "running" } v ? v : null, "the VM to run");

        await using var conn = await LibvirtConnection.OpenAsync("test:///default").Within();
        using var domain = await conn.LookupByUuidAsync(VmId.Parse(vm.Id).Value).Within();
        var xml = XDocument.Parse(await domain.GetXmlAsync().Within());
        var cputune = xml.Root!.Element("cputune")!;
        Assert.Equal("25000", cputune.Element("quota")!.Value);          // a quarter of the 100 ms period per vCPU
        Assert.Equal("100000", cputune.Element("period")!.Value);
        Assert.Equal("512", cputune.Element("shares")!.Value);           // 2 vCPUs x 1024 x 3/12

        var nic = xml.Descendants("interface").Single();
        Assert.Equal("default", nic.Element("source")!.Attribute("network")!.Value);
        Assert.Equal("virtio", nic.Element("model")!.Attribute("type")!.Value);
        var tap = nic.Element("target")!.Attribute("dev")!.Value;
        Assert.Equal(LibvirtHypervisor.TapOf(vm.Id), tap);
        var inbound = nic.Element("bandwidth")!.Element("inbound")!;
        Assert.Equal(("1250", "2500", "256"), (inbound.Attribute("average")!.Value, inbound.Attribute("peak")!.Value, inbound.Attribute("burst")!.Value));

        var live = await domain.GetInterfaceBandwidthAsync(tap).Within();
        Assert.Equal(new InterfaceRate(1250, 2500, 256), live.Inbound);
        Assert.Equal(new InterfaceRate(1250, 2500, 256), live.Outbound);

        await client.DeleteVmAsync(vm.Id, default).Within();
        await cloud.EventuallyAsync(async () => (await client.GetVmAsync(vm.Id, default)) is { State: "Deleted" } v ? v : null, "the delete");
        await Assert.ThrowsAsync<LibvirtException>(() => conn.LookupByUuidAsync(VmId.Parse(vm.Id).Value)).Within();
    }

    [Fact]
    public async Task SetBandwidthTier_RunningVm_LiveAndPersistentChangedAndStoredSpecFollows()
    {
        RequireLibvirt();
        var dir = Directory.CreateTempSubdirectory("dch-tier-").FullName;
        try
        {
            using var host = AgentHost(dir, "http://127.0.0.1:1");
            var executor = host.Services.GetRequiredService<CommandExecutor>();
            var state = host.Services.GetRequiredService<AgentState>();
            var id = VmId.New().ToString();
            var create = new Command
            {
                CommandId = "c1", Sequence = 1,
                CreateVm = new CreateVm { VmId = id, Name = "t", Resources = new Capacity { ComputePoints = 1, MemoryMib = 128 }, QualityTier = "Balanced", BandwidthTier = "Standard", BandwidthBytesPerSecond = 6_250_000, Start = true },
            };
            Assert.Equal(AckStatus.Succeeded, (await executor.ExecuteAsync(create, default).Within()).Status);

            var change = new Command { CommandId = "c2", Sequence = 2, SetBandwidthTier = new SetBandwidthTier { VmId = id, BandwidthTier = "Performance", BandwidthBytesPerSecond = 25_000_000 } };
            var ack = await executor.ExecuteAsync(change, default).Within();
            Assert.Equal(AckStatus.Succeeded, ack.Status);

            await using var conn = await LibvirtConnection.OpenAsync("test:///default").Within();
            using var domain = await conn.LookupByUuidAsync(VmId.Parse(id).Value).Within();
            var tap = LibvirtHypervisor.TapOf(id);
            var performance = new InterfaceRate(25000, 50000, 4096);
            Assert.Equal(performance, (await domain.GetInterfaceBandwidthAsync(tap).Within()).Inbound);
            Assert.Equal(performance, (await domain.GetInterfaceBandwidthAsync(tap, persistent: true).Within()).Outbound);
            var persistent = XDocument.Parse(await domain.GetXmlAsync(inactive: true).Within());
            Assert.Equal("25000", persistent.Descendants("inbound").Single().Attribute("average")!.Value);
            Assert.Equal("50000", XDocument.Parse(await domain.GetXmlAsync().Within()).Root!.Element("cputune")!.Element("quota")!.Value);
            Assert.Equal("Performance", state.ListVms().Single().Spec.BandwidthTier);

            // Unknown tier or an out-of-range rate: rejected with the reason; the NIC keeps its cap.
            var bad = await executor.ExecuteAsync(new Command { CommandId = "c3", Sequence = 3, SetBandwidthTier = new SetBandwidthTier { VmId = id, BandwidthTier = "Gold" } }, default).Within();
            Assert.Equal(AckStatus.Rejected, bad.Status);
            Assert.Contains("Gold", bad.Error, StringComparison.Ordinal);
            var tiny = await executor.ExecuteAsync(new Command { CommandId = "c4", Sequence = 4, SetBandwidthTier = new SetBandwidthTier { VmId = id, BandwidthTier = "Basic", BandwidthBytesPerSecond = 5 } }, default).Within();
            Assert.Equal(AckStatus.Rejected, tiny.Status);
            var badCreate = await executor.ExecuteAsync(new Command { CommandId = "c5", Sequence = 5, CreateVm = new CreateVm { VmId = VmId.New().ToString(), Resources = new Capacity { ComputePoints = 1, MemoryMib = 128 }, QualityTier = "Platinum" } }, default).Within();
            Assert.Equal(AckStatus.Rejected, badCreate.Status);
            Assert.Contains("Platinum", badCreate.Error, StringComparison.Ordinal);
            Assert.Equal(performance, (await domain.GetInterfaceBandwidthAsync(tap).Within()).Inbound);
            Assert.Single(state.ListVms());

            Assert.Equal(AckStatus.Succeeded, (await executor.ExecuteAsync(new Command { CommandId = "c6", Sequence = 6, DeleteVm = new DeleteVm { VmId = id } }, default).Within()).Status);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>An agent host on the test driver (not started unless the caller starts it).</summary>
    internal static IHost AgentHost(string dir, string orchestratorUrl, params string[] extra)
    {
        var key = Path.Combine(dir, "agent.key");
        if (!File.Exists(key))
        {
            Cli.Client.WalletKey.Generate().Save(key);
        }

        return AgentApplication.Create(
        [
            "--Agent:OrchestratorUrl=" + orchestratorUrl, "--Agent:WalletKeyFile=" + key, "--Agent:DataDirectory=" + Path.Combine(dir, "data"),
            "--Agent:Hypervisor=libvirt", "--Agent:LibvirtUri=test:///default", "--Agent:MachineId=dch-" + Path.GetFileName(dir),
            "--Agent:ComputePoints=8", "--Agent:MemoryMiB=8192", "--Agent:ReconnectDelay=00:00:00.200", "--Agent:MaxReconnectDelay=00:00:01", .. extra,
        ]);
    }

    private static async Task<IHost> StartInProcessAgentAsync(Cloud cloud, string name)
    {
        var dir = Path.Combine(cloud.Dir, name);
        Directory.CreateDirectory(dir);
        var host = AgentHost(dir, cloud.Agents.ToString());
        await host.StartAsync().Within();
        return new StoppingHost(host);
    }

    /// <summary>Stops the in-process agent before disposing it, so its stream closes cleanly.</summary>
    private sealed class StoppingHost(IHost inner) : IHost
    {
        public IServiceProvider Services => inner.Services;

        public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken = default) => inner.StopAsync(cancellationToken);

        public void Dispose()
        {
            inner.StopAsync().Within(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
            inner.Dispose();
        }
    }
}
