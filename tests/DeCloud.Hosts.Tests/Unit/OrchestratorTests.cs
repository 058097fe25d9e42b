using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Orchestrator;
using DeCloud.Orchestrator.Storage;
using DeCloud.Orchestrator.Vms;
using DeCloud.Protocol.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Hosts.Tests.Unit;

public sealed class OrchestratorTests : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dch-orch-").FullName;
    private readonly OrchestratorCoreStores _stores = new();

    public async ValueTask DisposeAsync()
    {
        await _stores.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task ApplyAck_SameAckTwiceOrUnknownCommand_AppliedOnce()
    {
        var store = await CreateSutAsync();
        var node = await OrchestratorCoreStores.RegisterAsync(store);
        var vm = NewVm(node);
        var command = store.CreateVm(vm, seq => new Command { CommandId = "c1", Sequence = seq, CreateVm = new CreateVm { VmId = vm.Id.ToString() } });
        var ack = new CommandAck { CommandId = command.CommandId, Status = AckStatus.Succeeded };

        Assert.True(store.ApplyAck(node, ack, DateTimeOffset.UnixEpoch));
        Assert.False(store.ApplyAck(node, ack, DateTimeOffset.UnixEpoch));
        Assert.False(store.ApplyAck(node, new CommandAck { CommandId = "unknown", Status = AckStatus.Succeeded }, DateTimeOffset.UnixEpoch));
        Assert.Equal(VmStates.Running, store.GetVm(vm.Id)!.State);
        Assert.Empty(store.PendingCommands(node));
    }

    [Fact]
    public async Task ApplyAck_RelayBoundAnotherPort_PortListsTheRelayPortAndKeepsItAcrossReopen()
    {
        var store = await CreateSutAsync();
        var node = await OrchestratorCoreStores.RegisterAsync(store);
        var vm = NewVm(node);
        var create = store.CreateVm(vm, seq => new Command { CommandId = "c1", Sequence = seq, CreateVm = new CreateVm { VmId = vm.Id.ToString() } });
        Assert.True(store.ApplyAck(node, new CommandAck { CommandId = create.CommandId, Status = AckStatus.Succeeded }, DateTimeOffset.UnixEpoch));
        var (port, command) = store.ReservePort(vm.Id, node, 8080, "tcp", 40000, 40010,
            (p, seq) => new Command { CommandId = "p1", Sequence = seq, AllocatePublicPort = new AllocatePublicPort { VmId = vm.Id.ToString(), PublicPort = p, TargetPort = 8080, Protocol = "tcp" } },
            DateTimeOffset.UnixEpoch)!.Value;
        Assert.Null(port.RelayPort);

        // 40000 was taken on the relay host, so the relay bound 40007 and the agent said so.
        var ack = new CommandAck { CommandId = command.CommandId, Status = AckStatus.Succeeded };
        ack.Result["public_port"] = port.PublicPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        ack.Result["relay_public_port"] = "40007";
        Assert.True(store.ApplyAck(node, ack, DateTimeOffset.UnixEpoch));

        var reopened = await CreateSutAsync();
        var listed = Assert.Single(reopened.ListPorts(vm.Id));
        Assert.Equal((port.PublicPort, 40007, "open"), (listed.PublicPort, listed.RelayPort, listed.State));
    }

    [Theory]
    [InlineData("")]
    [InlineData("-1")]
    [InlineData("70000")]
    [InlineData("40007; DROP TABLE ports")]
    public async Task ApplyAck_MalformedRelayPort_Ignored(string relayPort)
    {
        var store = await CreateSutAsync();
        var node = await OrchestratorCoreStores.RegisterAsync(store);
        var vm = NewVm(node);
        store.CreateVm(vm, seq => new Command { CommandId = "c1", Sequence = seq, CreateVm = new CreateVm { VmId = vm.Id.ToString() } });
        var (port, command) = store.ReservePort(vm.Id, node, 8080, "tcp", 40000, 40010,
            (p, seq) => new Command { CommandId = "p1", Sequence = seq, AllocatePublicPort = new AllocatePublicPort { VmId = vm.Id.ToString(), PublicPort = p, TargetPort = 8080, Protocol = "tcp" } },
            DateTimeOffset.UnixEpoch)!.Value;
        var ack = new CommandAck { CommandId = command.CommandId, Status = AckStatus.Succeeded };
        ack.Result["public_port"] = port.PublicPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        ack.Result["relay_public_port"] = relayPort;
        Assert.True(store.ApplyAck(node, ack, DateTimeOffset.UnixEpoch));
        var listed = Assert.Single(store.ListPorts(vm.Id));
        Assert.Equal((port.PublicPort, (int?)null, "open"), (listed.PublicPort, listed.RelayPort, listed.State));
    }

    [Fact]
    public async Task ApplyAck_FromAnotherNode_Ignored()
    {
        var store = await CreateSutAsync();
        var node = await OrchestratorCoreStores.RegisterAsync(store);
        var other = await OrchestratorCoreStores.RegisterAsync(store, "other");
        var vm = NewVm(node);
        var command = store.CreateVm(vm, seq => new Command { CommandId = "c1", Sequence = seq, CreateVm = new CreateVm { VmId = vm.Id.ToString() } });
        Assert.False(store.ApplyAck(other, new CommandAck { CommandId = command.CommandId, Status = AckStatus.Succeeded }, DateTimeOffset.UnixEpoch));
        Assert.Equal(VmStates.Provisioning, store.GetVm(vm.Id)!.State);
        Assert.Single(store.PendingCommands(node));
    }

    [Fact]
    public async Task Reopen_AfterWrites_NodesVmsAllocationsAndPendingCommandsRecovered()
    {
        var store = await CreateSutAsync();
        var node = await OrchestratorCoreStores.RegisterAsync(store);
        var vm = NewVm(node);
        store.CreateVm(vm, seq => new Command { CommandId = "c1", Sequence = seq, CreateVm = new CreateVm { VmId = vm.Id.ToString() } });
        _time.Advance(TimeSpan.FromSeconds(4));

        // The node goes offline through the registry's health check (no heartbeat for longer than OfflineAfter).
        await store.Registry.CheckHealthAsync();
        Assert.False(store.GetNode(node)!.Online);

        var placement = new NodePlacement(_time);
        var reopened = await _stores.OpenAsync(Path.Combine(_dir, "orchestrator.db"), _time, placement, Options);
        Assert.Equal(vm.Id, reopened.GetVm(vm.Id)!.Id);
        Assert.Single(reopened.PendingCommands(node));
        // The node comes back from the registry's tables in the same file, hardware and agent details included.
        var recovered = reopened.GetNode(node)!;
        Assert.Equal(("AMD EPYC 7443P", "m1"), (recovered.Registry!.Registration.Hardware.CpuModel, recovered.MachineId));

        // Core's inventory is rebuilt: the node (offline, as stored) with the VM's exact allocation.
        var usage = placement.Inventory.GetUsage(node);
        Assert.False(usage.IsOnline);
        Assert.Equal(2L * QualityTiers.TwelfthsPerPoint(QualityTier.Standard), usage.Allocated.CpuTwelfths);
        Assert.Equal(256, usage.Allocated.MemoryMiB);

        // A heartbeat brings it back online for placement.
        await reopened.RecordHeartbeatAsync(node, default, [], _time.GetUtcNow());
        Assert.True(placement.Inventory.GetUsage(node).IsOnline);
        Assert.True(reopened.GetNode(node)!.Online);
    }

    [Fact]
    public async Task Commit_HoldExpiredWhileStoring_StoredVmStillCounted()
    {
        var time = _time;
        var placement = new NodePlacement(time);
        var store = await _stores.OpenAsync(Path.Combine(_dir, "orchestrator.db"), time, placement, Options);
        var node = await OrchestratorCoreStores.RegisterAsync(store);
        var request = new VmRequest("t", new Resources(8, 8192, 100), QualityTier.Dedicated, BandwidthTier.Standard, null, "debian-12");
        var vm = NewVm(node) with { Resources = request.Resources, QualityTier = request.QualityTier };

        var held = placement.Hold(vm.Id, request);
        Assert.True(held.Succeeded);
        time.Advance(TimeSpan.FromMinutes(5));
        placement.Commit(vm, held.Reservation);

        var usage = placement.Inventory.GetUsage(node);
        Assert.Equal(usage.Capacity, usage.Allocated);
        Assert.False(placement.Hold(VmId.New(), request).Succeeded);
        placement.Release(vm.Id);
        Assert.True(placement.Hold(VmId.New(), request).Succeeded);
    }

    [Fact]
    public void Options_Invalid_EveryProblemNamesItsProperty()
    {
        var o = new OrchestratorOptions { ApiUrl = "nope", HeartbeatInterval = TimeSpan.FromSeconds(10), OfflineAfter = TimeSpan.FromSeconds(5), PublicPortMin = 70000 };
        var errors = o.Validate();
        foreach (var name in new[] { "ApiUrl", "OfflineAfter", "PublicPortMin" })
        {
            Assert.Contains(errors, e => e.Contains(name, StringComparison.Ordinal));
        }

        Assert.Empty(new OrchestratorOptions().Validate());
    }

    [Fact]
    public void AddDeCloudOrchestrator_CalledTwice_RegistersOnce()
    {
        var services = new ServiceCollection();
        services.AddDeCloudOrchestrator();
        var count = services.Count;
        var builder = services.AddDeCloudOrchestrator();
        Assert.Equal(count, services.Count);
        Assert.Same(services, builder.Services);
    }

    private static readonly NodeRegistryOptions Options = new()
    {
        HeartbeatInterval = TimeSpan.FromSeconds(1), OfflineAfter = TimeSpan.FromSeconds(3), CheckInterval = TimeSpan.FromSeconds(1),
    };

    private readonly FakeTimeProvider _time = new(DateTimeOffset.UnixEpoch.AddDays(100));

    private Task<OrchestratorStore> CreateSutAsync() => _stores.OpenAsync(Path.Combine(_dir, "orchestrator.db"), _time, options: Options);

    private static VmRecord NewVm(NodeId node) => new(VmId.New(), WalletAddress.Parse("0x52908400098527886E0F7030069857D2E4169EE7"), "t", node,
        new Resources(2, 256, 1), QualityTier.Standard, BandwidthTier.Standard, VmStates.Provisioning, "unknown", null,
        new Dictionary<string, bool>(), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);
}
