using System.Collections.Concurrent;
using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Registry;

public sealed class NodeRegistryTests : IAsyncDisposable
{
    private readonly ControlPlaneDatabase _db = new();
    private readonly FakeTimeProvider _time = new(ControlPlaneData.Start);
    private readonly List<NodeRegistry> _registries = [];
    private readonly RecordingObserver _observer = new();

    public async ValueTask DisposeAsync()
    {
        foreach (var r in _registries)
        {
            await r.DisposeAsync();
        }

        _db.Dispose();
    }

    private NodeRegistry CreateSut(NodeRegistryOptions? options = null)
    {
        var sut = new NodeRegistry(new SqliteNodeStore(_db.Open()), options, _time, observers: [_observer]);
        _registries.Add(sut);
        return sut;
    }

    private static NodeHeartbeat Beat(int i, int usedPoints = 1, params VmStatusReport[] vms) => new(ControlPlaneData.Node(i), new Resources(usedPoints, 1024, 10), vms);

    [Fact]
    public async Task RegisterAsync_NewNode_StoredOnlineWithCapacityFromBenchmark()
    {
        var sut = CreateSut();

        var node = await sut.RegisterAsync(ControlPlaneData.Registration(1, region: "EU-West", tags: ["SSD", "nvme"], gpus: ["nvidia-a100"])).Within();

        Assert.Equal(NodeStatus.Online, node.Status);
        Assert.Equal(new Resources(8, 32768, 500, 1, "nvidia-a100"), node.Capacity);
        Assert.Equal("eu-west", node.Registration.Region);
        Assert.Equal(["nvme", "ssd"], node.Registration.Tags);
        Assert.Equal(1.0, node.Uptime);
        Assert.Equal(1, _db.Scalar("SELECT COUNT(*) FROM nodes;"));
        Assert.Equal(NodeChangeKind.Registered, Assert.Single(_observer.Changes).Kind);
    }

    [Fact]
    public async Task RegisterAsync_SameNodeAgain_UpdatesKeepsStatusAndNotifiesUpdated()
    {
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();
        _time.Advance(TimeSpan.FromMinutes(1));

        var updated = await sut.RegisterAsync(ControlPlaneData.Registration(1, score: 16000, agent: "1.1.0", connectivity: NodeConnectivity.BehindNat)).Within();

        Assert.Equal(16, updated.Capacity.ComputePoints);
        Assert.Equal(NodeConnectivity.BehindNat, updated.Registration.Connectivity);
        Assert.Null(updated.Registration.PublicEndpoint);
        Assert.Equal(ControlPlaneData.Start, updated.RegisteredAt);
        Assert.Equal(ControlPlaneData.Start.AddMinutes(1), updated.UpdatedAt);
        Assert.Equal(1, _db.Scalar("SELECT COUNT(*) FROM nodes;"));
        Assert.Equal([NodeChangeKind.Registered, NodeChangeKind.Updated], _observer.Changes.Select(c => c.Kind));
    }

    public static TheoryData<string, NodeRegistration> BadRegistrations => new()
    {
        { "nodeId", ControlPlaneData.Registration(1) with { NodeId = default } },
        { "operatorWallet", ControlPlaneData.Registration(1) with { OperatorWallet = default } },
        { "hardware.memoryMiB", ControlPlaneData.Registration(1) with { Hardware = new NodeHardware(8, "cpu", 1000, -1, 10) } },
        { "hardware.cpuCores", ControlPlaneData.Registration(1) with { Hardware = new NodeHardware(0, "cpu", 1000, 1024, 10) } },
        { "hardware.benchmarkScore", ControlPlaneData.Registration(1) with { Hardware = new NodeHardware(8, "cpu", double.NaN, 1024, 10) } },
        { "hardware.storageGiB", ControlPlaneData.Registration(1) with { Hardware = new NodeHardware(8, "cpu", 1000, 1024, long.MaxValue) } },
        { "hardware.gpus[0].gpuModel", ControlPlaneData.Registration(1) with { Hardware = new NodeHardware(8, "cpu", 1000, 1024, 10, ["bad;model"]) } },
        { "region", ControlPlaneData.Registration(1, region: "") },
        { "region", ControlPlaneData.Registration(1, region: "eu west") },
        { "tags", ControlPlaneData.Registration(1, tags: ["ok", "not ok"]) },
        { "tags", ControlPlaneData.Registration(1, tags: Enumerable.Range(0, 65).Select(i => $"t{i}").ToArray()) },
        { "description", ControlPlaneData.Registration(1) with { Description = new string('x', 1001) } },
        { "pricing.computePointHour", ControlPlaneData.Registration(1, price: -0.01m) },
        { "pricing.computePointHour", ControlPlaneData.Registration(1, price: 1_000_000m) },
        { "publicEndpoint", ControlPlaneData.Registration(1, endpoint: null) },
        { "publicEndpoint", ControlPlaneData.Registration(1, endpoint: "203.0.113.7") },
        { "publicEndpoint", ControlPlaneData.Registration(1, endpoint: "203.0.113.7:70000") },
        { "publicEndpoint", ControlPlaneData.Registration(1, endpoint: "bad host:22") },
        { "publicEndpoint", ControlPlaneData.Registration(1, connectivity: NodeConnectivity.BehindNat) with { PublicEndpoint = "203.0.113.7:22" } },
        { "connectivity", ControlPlaneData.Registration(1) with { Connectivity = (NodeConnectivity)7 } },
        { "architecture", ControlPlaneData.Registration(1) with { Architecture = (CpuArchitecture)7 } },
        { "agentVersion", ControlPlaneData.Registration(1, agent: "") },
        { "agentVersion", ControlPlaneData.Registration(1, agent: "1.0 beta") },
    };

    [Theory]
    [MemberData(nameof(BadRegistrations))]
    public async Task RegisterAsync_BadInput_ThrowsNamingFieldAndStoresNothing(string field, NodeRegistration registration)
    {
        var sut = CreateSut();

        var ex = await Assert.ThrowsAsync<DeCloudValidationException>(() => sut.RegisterAsync(registration));

        Assert.Equal(field, ex.Field);
        Assert.Equal(0, _db.Scalar("SELECT COUNT(*) FROM nodes;"));
        Assert.Empty(await sut.GetAllAsync().Within());
        Assert.Empty(_observer.Changes);
    }

    [Fact]
    public async Task RecordHeartbeatAsync_UnknownNode_ThrowsNotFoundAndStoresNothing()
    {
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();

        var ex = await Assert.ThrowsAsync<DeCloudNotFoundException>(() => sut.RecordHeartbeatAsync(Beat(2)));

        Assert.Equal("nodeId", ex.Field);
        Assert.Equal(ControlPlaneData.Node(2).Value, ex.Value);
        Assert.Equal(1, _db.Scalar("SELECT COUNT(*) FROM node_status;"));
    }

    public static TheoryData<string, NodeHeartbeat> BadHeartbeats => new()
    {
        { "nodeId", new NodeHeartbeat(default, new Resources(1, 1, 1)) },
        { "used.computePoints", new NodeHeartbeat(ControlPlaneData.Node(1), new Resources(-1, 1, 1)) },
        { "used.memoryMiB", new NodeHeartbeat(ControlPlaneData.Node(1), new Resources(1, long.MaxValue, 1)) },
        { "vms[0].vmId", new NodeHeartbeat(ControlPlaneData.Node(1), new Resources(1, 1, 1), [new VmStatusReport(default, VmState.Running)]) },
        { "vms[0].state", new NodeHeartbeat(ControlPlaneData.Node(1), new Resources(1, 1, 1), [new VmStatusReport(VmId.New(), (VmState)99)]) },
        { "vms", new NodeHeartbeat(ControlPlaneData.Node(1), new Resources(1, 1, 1), Enumerable.Range(0, 10_001).Select(_ => new VmStatusReport(VmId.New(), VmState.Running)).ToArray()) },
    };

    [Theory]
    [MemberData(nameof(BadHeartbeats))]
    public async Task RecordHeartbeatAsync_BadInput_ThrowsNamingFieldAndStoresNothing(string field, NodeHeartbeat heartbeat)
    {
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();
        _time.Advance(TimeSpan.FromSeconds(10));

        var ex = await Assert.ThrowsAsync<DeCloudValidationException>(() => sut.RecordHeartbeatAsync(heartbeat));

        Assert.Equal(field, ex.Field);
        Assert.Equal(ControlPlaneData.Start.ToUnixTimeMilliseconds(), _db.Scalar("SELECT last_seen_at FROM node_status;"));
    }

    [Fact]
    public async Task RecordHeartbeatAsync_DuplicateVm_ThrowsNamingTheSecond()
    {
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();
        var vm = VmId.New();

        var ex = await Assert.ThrowsAsync<DeCloudValidationException>(
            () => sut.RecordHeartbeatAsync(Beat(1, 1, new VmStatusReport(vm, VmState.Running), new VmStatusReport(vm, VmState.Stopped))));

        Assert.Equal("vms[1].vmId", ex.Field);
    }

    [Fact]
    public async Task CheckHealthAsync_NoHeartbeatForTwoMinutes_MarksOfflineOnceAndNotifies()
    {
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();
        await sut.RegisterAsync(ControlPlaneData.Registration(2)).Within();
        for (var t = 0; t < 8; t++)
        {
            _time.Advance(TimeSpan.FromSeconds(15));
            await sut.RecordHeartbeatAsync(Beat(2)).Within();
        }

        // Node 1 was last seen at registration, exactly 2 minutes ago: not yet offline.
        Assert.Equal(0, await sut.CheckHealthAsync().Within());
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, await sut.CheckHealthAsync().Within());
        Assert.Equal(0, await sut.CheckHealthAsync().Within());

        Assert.Equal(NodeStatus.Offline, (await sut.GetAsync(ControlPlaneData.Node(1)).Within())!.Status);
        Assert.Equal(NodeStatus.Online, (await sut.GetAsync(ControlPlaneData.Node(2)).Within())!.Status);
        Assert.Equal((long)NodeStatus.Offline, _db.Scalar($"SELECT status FROM node_status WHERE node_id = '{ControlPlaneData.Node(1).Value}';"));
        var offline = Assert.Single(_observer.Changes, c => c.Kind == NodeChangeKind.Offline);
        Assert.Equal(ControlPlaneData.Node(1), offline.NodeId);
    }

    [Fact]
    public async Task RecordHeartbeatAsync_OfflineNode_BackOnlineAndFailuresCountedOnce()
    {
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();

        // Silent for 10 minutes, checked every 5 s: many checks, each failure counted once.
        for (var t = 0; t < 120; t++)
        {
            _time.Advance(TimeSpan.FromSeconds(5));
            await sut.CheckHealthAsync().Within();
        }

        Assert.Equal(NodeStatus.Offline, (await sut.GetAsync(ControlPlaneData.Node(1)).Within())!.Status);
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(NodeStatus.Online, await sut.RecordHeartbeatAsync(Beat(1)).Within());

        var node = (await sut.GetAsync(ControlPlaneData.Node(1)).Within())!;
        Assert.Equal(NodeStatus.Online, node.Status);
        Assert.Equal((602 / 15) - 1, node.FailedHeartbeats); // 39 heartbeats were due and never came
        Assert.Equal(39, _db.Scalar("SELECT SUM(failed) FROM node_failed_days;"));
        Assert.Equal([NodeChangeKind.Registered, NodeChangeKind.Offline, NodeChangeKind.Online], _observer.Changes.Select(c => c.Kind));
    }

    [Fact]
    public async Task RecordHeartbeatAsync_OnTime_NoFailureCounted()
    {
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();
        for (var t = 0; t < 40; t++)
        {
            _time.Advance(TimeSpan.FromSeconds(t % 2 == 0 ? 14 : 16)); // jitter around 15 s
            await sut.RecordHeartbeatAsync(Beat(1)).Within();
            await sut.CheckHealthAsync().Within();
        }

        Assert.Equal(0, (await sut.GetAsync(ControlPlaneData.Node(1)).Within())!.FailedHeartbeats);
        Assert.Equal(1.0, (await sut.GetAsync(ControlPlaneData.Node(1)).Within())!.Uptime);
    }

    [Fact]
    public async Task NodeHealthMonitor_ConfiguredShortIntervals_LoopMarksSilentNodeOffline()
    {
        var options = new NodeRegistryOptions { HeartbeatInterval = TimeSpan.FromSeconds(1), OfflineAfter = TimeSpan.FromSeconds(3), CheckInterval = TimeSpan.FromSeconds(1) };
        var sut = CreateSut(options);
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();
        var offline = new TaskCompletionSource<NodeChange>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = sut.Subscribe(new DelegateObserver(c =>
        {
            if (c.Kind == NodeChangeKind.Offline)
            {
                offline.TrySetResult(c);
            }
        }));
        await using var monitor = new NodeHealthMonitor(sut, _time);
        await monitor.StartAsync().Within();

        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(offline.Task.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(2));

        var change = await offline.Task.Within();
        Assert.Equal(ControlPlaneData.Node(1), change.NodeId);
        Assert.Equal(NodeStatus.Offline, change.Node.Status);
        await monitor.StopAsync().Within();
    }

    [Fact]
    public async Task Reputation_SilenceAcrossMidnight_FailuresStoredPerDay()
    {
        _time.SetUtcNow(new DateTimeOffset(2026, 3, 10, 23, 0, 0, TimeSpan.Zero));
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();

        _time.Advance(TimeSpan.FromHours(2)); // silent 23:00 -> 01:00
        await sut.RecordHeartbeatAsync(Beat(1)).Within();

        var day = Reputation.Day(ControlPlaneData.Start.AddHours(11));
        Assert.Equal(239, _db.Scalar($"SELECT failed FROM node_failed_days WHERE day = {day};")); // due 23:00:15 .. 23:59:45
        Assert.Equal(240, _db.Scalar($"SELECT failed FROM node_failed_days WHERE day = {day + 1};")); // due 00:00:00 .. 00:59:45
        Assert.Equal(479, (await sut.GetAsync(ControlPlaneData.Node(1)).Within())!.FailedHeartbeats);
    }

    [Fact]
    public async Task Reputation_ThirtyDayWindow_OldFailuresDropOutAndArePruned()
    {
        var options = new NodeRegistryOptions { HeartbeatInterval = TimeSpan.FromHours(1), OfflineAfter = TimeSpan.FromHours(2), CheckInterval = TimeSpan.FromHours(1) };
        var sut = CreateSut(options);
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within(); // day 0, 12:00
        _time.Advance(TimeSpan.FromHours(5));
        await sut.RecordHeartbeatAsync(Beat(1)).Within(); // 4 failed on day 0
        var day0 = Reputation.Day(ControlPlaneData.Start);

        while (Reputation.Day(_time.GetUtcNow()) < day0 + 29 || _time.GetUtcNow().Hour < 23)
        {
            _time.Advance(TimeSpan.FromHours(1));
            await sut.RecordHeartbeatAsync(Beat(1)).Within();
        }

        // Day 29, 23:00: day 0 is still the first day of the 30-day window.
        var inWindow = (await sut.GetAsync(ControlPlaneData.Node(1)).Within())!;
        var expected = (_time.GetUtcNow() - ControlPlaneData.Start).TotalHours;
        Assert.Equal(4, inWindow.FailedHeartbeats);
        Assert.Equal((expected - 4) / expected, inWindow.Uptime, 12);

        _time.Advance(TimeSpan.FromHours(1)); // day 30, 00:00: day 0 leaves the window
        await sut.RecordHeartbeatAsync(Beat(1)).Within();
        await sut.CheckHealthAsync().Within();

        var after = (await sut.GetAsync(ControlPlaneData.Node(1)).Within())!;
        Assert.Equal(0, after.FailedHeartbeats);
        Assert.Equal(1.0, after.Uptime);
        Assert.Equal(0, _db.Scalar("SELECT COUNT(*) FROM node_failed_days;"));
    }

    [Fact]
    public async Task Restart_NodeDownYesterday_ReputationStatusAndVmStatesSurvive()
    {
        var vm = VmId.New();
        var first = CreateSut();
        await first.RegisterAsync(ControlPlaneData.Registration(1)).Within();
        _time.Advance(TimeSpan.FromHours(3));
        await first.CheckHealthAsync().Within(); // offline, 719 failed
        _time.Advance(TimeSpan.FromHours(1));
        await first.RecordHeartbeatAsync(Beat(1, 3, new VmStatusReport(vm, VmState.Running))).Within(); // back, 959 failed in total
        Assert.True(await first.RecordVmHostedAsync(ControlPlaneData.Node(1), "vm-1/4/hosted").Within());
        _time.Advance(TimeSpan.FromDays(1));
        await first.CheckHealthAsync().Within(); // silent for a day: offline again
        var before = (await first.GetAsync(ControlPlaneData.Node(1)).Within())!;
        await first.DisposeAsync();
        _registries.Remove(first);

        var second = CreateSut();
        var after = (await second.GetAsync(ControlPlaneData.Node(1)).Within())!;

        Assert.Equal(NodeStatus.Offline, after.Status);
        Assert.Equal(before.FailedHeartbeats, after.FailedHeartbeats);
        Assert.True(after.Uptime < 0.99, $"uptime {after.Uptime} should remember yesterday's outage");
        Assert.Equal(before.Uptime, after.Uptime);
        Assert.Equal(1, after.VmsHosted);
        Assert.Equal(new VmStatusReport(vm, VmState.Running), Assert.Single(after.Vms));
        Assert.Equal(new Resources(3, 1024, 10), after.Used);

        // The failures counted before the restart are not counted again.
        await second.CheckHealthAsync().Within();
        Assert.Equal(before.FailedHeartbeats, (await second.GetAsync(ControlPlaneData.Node(1)).Within())!.FailedHeartbeats);
        Assert.False(await second.RecordVmHostedAsync(ControlPlaneData.Node(1), "vm-1/4/hosted").Within());
    }

    [Fact]
    public async Task Counters_SameIdempotencyKeyTwice_CountedOnce()
    {
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();

        Assert.True(await sut.RecordVmHostedAsync(ControlPlaneData.Node(1), "a").Within());
        Assert.False(await sut.RecordVmHostedAsync(ControlPlaneData.Node(1), "a").Within());
        Assert.True(await sut.RecordVmHostedAsync(ControlPlaneData.Node(1), "b").Within());
        Assert.True(await sut.RecordVmCompletedCleanlyAsync(ControlPlaneData.Node(1), "a").Within());

        var node = (await sut.GetAsync(ControlPlaneData.Node(1)).Within())!;
        Assert.Equal(2, node.VmsHosted);
        Assert.Equal(1, node.VmsCompletedCleanly);
        await Assert.ThrowsAsync<DeCloudNotFoundException>(() => sut.RecordVmHostedAsync(ControlPlaneData.Node(9), "c"));
        Assert.Equal("idempotencyKey", (await Assert.ThrowsAsync<DeCloudValidationException>(() => sut.RecordVmHostedAsync(ControlPlaneData.Node(1), ""))).Field);
    }

    [Fact]
    public async Task SearchAsync_Filters_ReturnOnlyMatchingNodes()
    {
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1, region: "eu-west", tags: ["ssd", "nvme"], price: 0.010m)).Within();
        await sut.RegisterAsync(ControlPlaneData.Registration(2, region: "eu-west", tags: ["ssd"], price: 0.020m, gpus: ["nvidia-a100"])).Within();
        await sut.RegisterAsync(ControlPlaneData.Registration(3, region: "us-east", tags: ["ssd"], price: 0.005m, score: 2000)).Within();
        await sut.RegisterAsync(ControlPlaneData.Registration(4, region: "eu-west", tags: ["ssd"], price: 0.001m)).Within();
        _time.Advance(TimeSpan.FromSeconds(15));
        await sut.RecordHeartbeatAsync(Beat(1, usedPoints: 6)).Within();
        await sut.RecordHeartbeatAsync(Beat(2)).Within();
        await sut.RecordHeartbeatAsync(Beat(3)).Within();
        _time.Advance(TimeSpan.FromMinutes(2)); // node 4 never sends a heartbeat
        await sut.RecordHeartbeatAsync(Beat(1, usedPoints: 6)).Within();
        await sut.RecordHeartbeatAsync(Beat(2)).Within();
        await sut.RecordHeartbeatAsync(Beat(3)).Within();
        await sut.CheckHealthAsync().Within();

        async Task<int[]> Ids(NodeSearchQuery q) =>
            (await sut.SearchAsync(q).Within()).Select(n => Enumerable.Range(1, 4).Single(i => ControlPlaneData.Node(i) == n.Id)).ToArray();

        Assert.Equal(new[] { 1, 2 }, (await Ids(new NodeSearchQuery { Region = "EU-WEST" })).Order());
        Assert.Equal(new[] { 1, 2, 4 }, (await Ids(new NodeSearchQuery { Region = "eu-west", OnlineOnly = false })).Order());
        Assert.Equal(new[] { 1 }, await Ids(new NodeSearchQuery { Tags = ["nvme", "ssd"] }));
        Assert.Equal(new[] { 1, 3 }, (await Ids(new NodeSearchQuery { MaxComputePointHourPrice = 0.010m })).Order());
        Assert.Equal(new[] { 2 }, await Ids(new NodeSearchQuery { GpuRequired = true }));
        Assert.Equal(new[] { 2 }, await Ids(new NodeSearchQuery { MinFreeComputePoints = 3 }));
        Assert.Equal(new[] { 3, 1, 2 }, await Ids(new NodeSearchQuery { Sort = NodeSortOrder.Price }));
        Assert.Equal(new[] { 2, 1, 3 }, await Ids(new NodeSearchQuery { Sort = NodeSortOrder.Capacity }));
        Assert.Equal(new[] { 1 }, await Ids(new NodeSearchQuery { Sort = NodeSortOrder.Price, Offset = 1, Limit = 1 }));
        Assert.Empty(await Ids(new NodeSearchQuery { MinUptime = 1.0, OnlineOnly = false, Region = "eu-west", Tags = ["nope"] }));
    }

    [Theory]
    [InlineData("minUptime")]
    [InlineData("limit")]
    [InlineData("offset")]
    [InlineData("region")]
    [InlineData("tags")]
    [InlineData("maxComputePointHourPrice")]
    [InlineData("sort")]
    [InlineData("minFreeComputePoints")]
    public async Task SearchAsync_BadQuery_ThrowsNamingField(string field)
    {
        var query = field switch
        {
            "minUptime" => new NodeSearchQuery { MinUptime = 1.5 },
            "limit" => new NodeSearchQuery { Limit = 0 },
            "offset" => new NodeSearchQuery { Offset = -1 },
            "region" => new NodeSearchQuery { Region = "eu/west" },
            "tags" => new NodeSearchQuery { Tags = [""] },
            "maxComputePointHourPrice" => new NodeSearchQuery { MaxComputePointHourPrice = -1 },
            "sort" => new NodeSearchQuery { Sort = (NodeSortOrder)9 },
            _ => new NodeSearchQuery { MinFreeComputePoints = -1 },
        };

        var ex = await Assert.ThrowsAsync<DeCloudValidationException>(() => CreateSut().SearchAsync(query));

        Assert.Equal(field, ex.Field);
    }

    [Fact]
    public async Task GetFeaturedAsync_ManyNodes_TopTenOnlineAboveNinetyFivePercent()
    {
        var sut = CreateSut();
        for (var i = 0; i < 14; i++)
        {
            await sut.RegisterAsync(ControlPlaneData.Registration(i, price: 0.01m + (i * 0.001m))).Within();
        }

        // One hour: nodes 0-11 beat every 15 s; node 12 misses 10 % of its heartbeats; node 13 goes silent.
        for (var t = 1; t <= 240; t++)
        {
            _time.Advance(TimeSpan.FromSeconds(15));
            for (var i = 0; i < 13; i++)
            {
                if (i == 12 && t % 10 == 0 && t < 240)
                {
                    continue;
                }

                await sut.RecordHeartbeatAsync(Beat(i));
            }

            if (t % 8 == 0)
            {
                await sut.CheckHealthAsync().Within();
            }
        }

        var featured = await sut.GetFeaturedAsync().Within();

        Assert.Equal(10, featured.Count);
        Assert.All(featured, n => Assert.True(n.IsOnline && n.Uptime > 0.95));
        Assert.Equal(Enumerable.Range(0, 10).Select(ControlPlaneData.Node), featured.Select(n => n.Id)); // equal uptime: cheapest first
        var all = await sut.GetAllAsync().Within();
        Assert.Equal(NodeStatus.Offline, all.Single(n => n.Id == ControlPlaneData.Node(13)).Status);
        Assert.InRange(all.Single(n => n.Id == ControlPlaneData.Node(12)).Uptime, 0.5, 0.95);
    }

    [Fact]
    public async Task RecordHeartbeatAsync_ManyConcurrent_AllDurableInFewerTransactions()
    {
        var sut = CreateSut();
        for (var i = 0; i < 50; i++)
        {
            await sut.RegisterAsync(ControlPlaneData.Registration(i)).Within();
        }

        _time.Advance(TimeSpan.FromSeconds(15));
        await Task.WhenAll(Enumerable.Range(0, 1000).Select(k => Task.Run(() => sut.RecordHeartbeatAsync(Beat(k % 50, usedPoints: 1 + (k % 50) % 8))))).Within();

        Assert.True(sut.HeartbeatBatches < 1000, $"{sut.HeartbeatBatches} transactions for 1000 heartbeats");
        Assert.Equal(50, _db.Scalar($"SELECT COUNT(*) FROM node_status WHERE last_seen_at = {_time.GetUtcNow().ToUnixTimeMilliseconds()};"));
        Assert.Equal(7, _db.Scalar($"SELECT used_compute_points FROM node_status WHERE node_id = '{ControlPlaneData.Node(14).Value}';"));
    }

    [Fact]
    public async Task RemoveAsync_RegisteredNode_GoneFromStoreAndHeartbeatsRefused()
    {
        var sut = CreateSut();
        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();
        await sut.RecordVmHostedAsync(ControlPlaneData.Node(1), "k").Within();

        Assert.True(await sut.RemoveAsync(ControlPlaneData.Node(1)).Within());
        Assert.False(await sut.RemoveAsync(ControlPlaneData.Node(1)).Within());

        await Assert.ThrowsAsync<DeCloudNotFoundException>(() => sut.RecordHeartbeatAsync(Beat(1)));
        Assert.Equal(0, _db.Scalar("SELECT (SELECT COUNT(*) FROM nodes) + (SELECT COUNT(*) FROM node_status) + (SELECT COUNT(*) FROM node_counter_keys);"));
        Assert.Equal(NodeChangeKind.Removed, _observer.Changes[^1].Kind);
    }

    [Fact]
    public async Task Subscribe_ObserverThrows_RegistryAndOtherObserversUnaffected()
    {
        var sut = CreateSut();
        using var bad = sut.Subscribe(new DelegateObserver(_ => throw new InvalidOperationException("observer bug")));
        var seen = new RecordingObserver();
        var subscription = sut.Subscribe(seen);

        await sut.RegisterAsync(ControlPlaneData.Registration(1)).Within();
        subscription.Dispose();
        await sut.RegisterAsync(ControlPlaneData.Registration(2)).Within();

        Assert.Single(seen.Changes);
        Assert.Equal(2, _observer.Changes.Count);
        Assert.Equal(2, (await sut.GetAllAsync().Within()).Count);
    }

    [Fact]
    public void Options_BadValues_ThrowNamingProperty()
    {
        Assert.Equal("NodeRegistryOptions.OfflineAfter", Assert.Throws<DeCloudValidationException>(() => new NodeRegistryOptions { OfflineAfter = TimeSpan.FromSeconds(1) }.Validate()).Field);
        Assert.Equal("NodeRegistryOptions.HeartbeatInterval", Assert.Throws<DeCloudValidationException>(() => new NodeRegistryOptions { HeartbeatInterval = TimeSpan.Zero }.Validate()).Field);
        Assert.Equal("NodeRegistryOptions.ReputationWindowDays", Assert.Throws<DeCloudValidationException>(() => new NodeRegistryOptions { ReputationWindowDays = 0 }.Validate()).Field);
        Assert.Equal("NodeRegistryOptions.FeaturedMinUptime", Assert.Throws<DeCloudValidationException>(() => new NodeRegistryOptions { FeaturedMinUptime = 2 }.Validate()).Field);
        Assert.Throws<DeCloudValidationException>(() => new NodeRegistry(new SqliteNodeStore(_db.Open()), new NodeRegistryOptions { CheckInterval = TimeSpan.FromHours(1) }));
    }

    private sealed class RecordingObserver : INodeRegistryObserver
    {
        private readonly ConcurrentQueue<NodeChange> _changes = new();

        public List<NodeChange> Changes => [.. _changes];

        public void OnNodeChanged(NodeChange change) => _changes.Enqueue(change);
    }

    private sealed class DelegateObserver(Action<NodeChange> onChange) : INodeRegistryObserver
    {
        public void OnNodeChanged(NodeChange change) => onChange(change);
    }
}
