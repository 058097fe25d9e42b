using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Core.Scheduling;
using DeCloud.Core.Tests.Lifecycle;
using DeCloud.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Scheduling;

public sealed class NodeInventorySyncTests : IAsyncDisposable
{
    private readonly ControlPlaneDatabase _db = new();
    private readonly FakeTimeProvider _time = new(ControlPlaneData.Start);
    private readonly NodeInventory _inventory;
    private readonly NodeRegistry _registry;

    public NodeInventorySyncTests()
    {
        _inventory = new NodeInventory(_time);
        _registry = new NodeRegistry(
            new SqliteNodeStore(_db.Open()),
            new NodeRegistryOptions { HeartbeatInterval = TimeSpan.FromSeconds(10), OfflineAfter = TimeSpan.FromSeconds(30), CheckInterval = TimeSpan.FromSeconds(5) },
            _time);
        _registry.Subscribe(new NodeInventorySync(_inventory));
    }

    public async ValueTask DisposeAsync()
    {
        await _registry.DisposeAsync();
        _db.Dispose();
    }

    [Fact]
    public async Task OnNodeChanged_RegisterOfflineOnlineRemove_InventoryFollowsTheRegistry()
    {
        var scheduler = new VmScheduler(_inventory, new SchedulerOptions());
        await TimeBox.Within(_registry.RegisterAsync(ControlPlaneData.Registration(1, score: 8000)));
        Assert.True(_inventory.Contains(ControlPlaneData.Node(1)));
        Assert.Equal(1, _inventory.OnlineCount);
        Assert.True(scheduler.Place(Request(), PlacementMode.Hold).Succeeded);

        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(1, await TimeBox.Within(_registry.CheckHealthAsync()));
        Assert.Equal(0, _inventory.OnlineCount);
        Assert.False(scheduler.Place(Request(), PlacementMode.Hold).Succeeded);

        await TimeBox.Within(_registry.RecordHeartbeatAsync(new NodeHeartbeat(ControlPlaneData.Node(1), default)));
        Assert.Equal(1, _inventory.OnlineCount);

        Assert.True(await TimeBox.Within(_registry.RemoveAsync(ControlPlaneData.Node(1))));
        Assert.False(_inventory.Contains(ControlPlaneData.Node(1)));
    }

    [Fact]
    public async Task OnNodeChanged_ReRegisteredWithMoreCores_CapacityUpdatedAllocationsKept()
    {
        var scheduler = new VmScheduler(_inventory, new SchedulerOptions());
        await TimeBox.Within(_registry.RegisterAsync(ControlPlaneData.Registration(1, score: 4000)));
        var placed = scheduler.Place(Request(), PlacementMode.Commit);
        Assert.True(placed.Succeeded);

        await TimeBox.Within(_registry.RegisterAsync(ControlPlaneData.Registration(1, score: 16000)));

        var usage = _inventory.GetUsage(ControlPlaneData.Node(1));
        Assert.Equal(16L * QualityTiers.TwelfthsPerNodePoint, usage.Capacity.CpuTwelfths);
        Assert.Contains(_inventory.GetReservations(ControlPlaneData.Node(1)), r => r.Id == placed.Reservation);
    }

    [Fact]
    public void ToSnapshot_RegistryRecord_MapsConnectivityPricesAndUptime()
    {
        var registration = ControlPlaneData.Registration(2, region: "us-east", price: 0.015m, connectivity: NodeConnectivity.BehindNat).Normalize();
        var record = new NodeRecord(registration, new Resources(8, 32768, 500), NodeStatus.Offline, ControlPlaneData.Start, ControlPlaneData.Start,
            ControlPlaneData.Start, default, [], 0.987654, 3, 1, 0);

        var snapshot = NodeInventorySync.ToSnapshot(record);

        Assert.False(snapshot.HasPublicIp);
        Assert.False(snapshot.IsOnline);
        Assert.Equal("us-east", snapshot.Region);
        Assert.Equal(15_000, snapshot.Price.PerComputePoint);
        Assert.Equal(2_000, snapshot.Price.PerGiBMemory);
        Assert.Equal(9_877, snapshot.UptimeBasisPoints);
    }

    [Fact]
    public async Task Find_BeforeAndAfterLoad_ThrowsThenReturnsTheStoredNode()
    {
        await TimeBox.Within(_registry.RegisterAsync(ControlPlaneData.Registration(3)));
        await using var reopened = new NodeRegistry(new SqliteNodeStore(_db.Open()), timeProvider: _time);

        Assert.Throws<InvalidOperationException>(() => reopened.Find(ControlPlaneData.Node(3)));
        await TimeBox.Within(reopened.InitializeAsync());

        Assert.Equal("AMD EPYC 7443P", reopened.Find(ControlPlaneData.Node(3))!.Registration.Hardware.CpuModel);
        Assert.Null(reopened.Find(ControlPlaneData.Node(4)));
        Assert.Equal([ControlPlaneData.Node(3)], reopened.Snapshot().Select(n => n.Id));
    }

    private static PlacementRequest Request() => new() { VmId = VmId.New(), Resources = new Resources(2, 1024, 10) };
}
