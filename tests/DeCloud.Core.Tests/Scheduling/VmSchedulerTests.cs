using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Scheduling;

public sealed class VmSchedulerTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private (NodeInventory Inventory, VmScheduler Scheduler) CreateSut(SchedulerOptions? options = null, params NodeSnapshot[] nodes)
    {
        var inventory = new NodeInventory(_time);
        foreach (var n in nodes)
        {
            inventory.Upsert(n);
        }

        return (inventory, new VmScheduler(inventory, options));
    }

    private static NodeSnapshot Node(int i, int points = 16, long memoryGiB = 32, string region = "eu-west", CpuArchitecture arch = CpuArchitecture.X86_64,
        int gpus = 0, string? gpuModel = null, bool online = true, bool publicIp = true, string[]? tags = null, long pricePerPoint = 10_000) => new()
    {
        Id = Fleets.Id(i),
        Capacity = new Resources(points, memoryGiB * 1024, 500, gpus, gpuModel),
        Region = region,
        Architecture = arch,
        IsOnline = online,
        HasPublicIp = publicIp,
        Tags = tags ?? [],
        Price = new NodePrice(pricePerPoint, 1_000, 10, 100_000),
    };

    private static PlacementRequest Vm(int points = 2, long memoryGiB = 4, QualityTier tier = QualityTier.Dedicated, string? region = null,
        CpuArchitecture? arch = null, int gpus = 0, NodeId? target = null, PlacementStrategy? strategy = null) => new()
    {
        VmId = VmId.New(),
        Resources = new Resources(points, memoryGiB * 1024, 10, gpus),
        QualityTier = tier,
        Region = region,
        Architecture = arch,
        TargetNode = target,
        Strategy = strategy,
    };

    [Fact]
    public void Place_TierRatios_ConsumeExactTwelfths()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1, points: 1));
        // One node point = 12 twelfths = 4 Burstable points (3 each); a fifth does not fit.
        for (var i = 0; i < 4; i++)
        {
            Assert.True(scheduler.Place(Vm(points: 1, memoryGiB: 1, tier: QualityTier.Burstable)).Succeeded);
        }

        Assert.False(scheduler.Place(Vm(points: 1, memoryGiB: 1, tier: QualityTier.Burstable)).Succeeded);
        Assert.Equal(0, inventory.GetUsage(Fleets.Id(1)).Free.CpuTwelfths);
    }

    [Fact]
    public void Hold_Expires_ResourcesReturnAndCommitFails()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1));
        var hold = scheduler.Place(Vm(points: 4), PlacementMode.Hold, TimeSpan.FromSeconds(30));
        Assert.True(hold.Succeeded);
        Assert.Equal(48, inventory.GetUsage(Fleets.Id(1)).Held.CpuTwelfths);

        _time.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(ReservationState.Held, scheduler.GetReservation(hold.Reservation)!.Value.State);
        _time.Advance(TimeSpan.FromSeconds(1));

        var usage = inventory.GetUsage(Fleets.Id(1));
        Assert.Equal(default, usage.Held);
        Assert.Equal(usage.Capacity, usage.Free);
        Assert.Equal(ReservationState.None, scheduler.Commit(hold.Reservation));
        Assert.False(scheduler.Release(hold.Reservation));
    }

    [Fact]
    public void Commit_BeforeExpiry_AllocatesAndSurvivesExpiry()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1));
        var hold = scheduler.Place(Vm(points: 4), PlacementMode.Hold);
        Assert.Equal(ReservationState.Allocated, scheduler.Commit(hold.Reservation));
        Assert.Equal(ReservationState.Allocated, scheduler.Commit(hold.Reservation));
        _time.Advance(TimeSpan.FromHours(1));
        var usage = inventory.GetUsage(Fleets.Id(1));
        Assert.Equal(48, usage.Allocated.CpuTwelfths);
        Assert.Equal(0, usage.Held.CpuTwelfths);
    }

    [Fact]
    public void Release_Twice_SecondIsNoOpAndStaleHandleNeverMatchesNewReservation()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1));
        var first = scheduler.Place(Vm(points: 4));
        Assert.True(scheduler.Release(first.Reservation));
        var second = scheduler.Place(Vm(points: 2)); // reuses the pooled slot
        Assert.False(scheduler.Release(first.Reservation));
        Assert.False(scheduler.Release(first.Reservation));
        Assert.Equal(24, inventory.GetUsage(Fleets.Id(1)).Allocated.CpuTwelfths);
        Assert.True(scheduler.Release(second.Reservation));
        Assert.Equal(0, inventory.GetUsage(Fleets.Id(1)).Allocated.CpuTwelfths);
    }

    [Fact]
    public void Place_DryRun_HoldsNothing()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1));
        var r = scheduler.Place(Vm(points: 16), PlacementMode.DryRun);
        Assert.True(r.Succeeded);
        Assert.True(r.Reservation.IsEmpty);
        var usage = inventory.GetUsage(Fleets.Id(1));
        Assert.Equal(usage.Capacity, usage.Free);
    }

    [Fact]
    public void Place_BinPackAndSpread_ChooseFullestAndEmptiest()
    {
        var (_, scheduler) = CreateSut(null, Node(1), Node(2), Node(3));
        var seed = scheduler.Place(Vm(points: 8, target: Fleets.Id(2)));
        Assert.Equal(Fleets.Id(2), seed.Node);
        Assert.Equal(Fleets.Id(2), scheduler.Place(Vm(points: 2)).Node);
        Assert.NotEqual(Fleets.Id(2), scheduler.Place(Vm(points: 2, strategy: PlacementStrategy.Spread)).Node);
    }

    [Fact]
    public void Place_OfflineNode_NeverReceivesWork()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1), Node(2, online: false));
        for (var i = 0; i < 8; i++)
        {
            Assert.Equal(Fleets.Id(1), scheduler.Place(Vm(points: 2)).Node);
        }

        Assert.False(scheduler.Place(Vm(points: 2)).Succeeded);
        inventory.SetOnline(Fleets.Id(2), true);
        Assert.Equal(Fleets.Id(2), scheduler.Place(Vm(points: 2)).Node);
    }

    [Fact]
    public void Place_SameSeedAndInventory_SamePlacements()
    {
        static List<NodeId> Run(ulong seed)
        {
            var rng = new Random(7);
            var inventory = new NodeInventory(new FakeTimeProvider());
            for (var i = 0; i < 200; i++)
            {
                inventory.Upsert(Fleets.Node(rng, i));
            }

            var s = new VmScheduler(inventory, new SchedulerOptions { Seed = seed, PriceWeight = 0.5, ReputationWeight = 0.5 });
            var placed = new List<NodeId>();
            for (var i = 0; i < 300; i++)
            {
                var r = s.Place(Fleets.Request(rng));
                placed.Add(r.Succeeded ? r.Node : default);
            }

            return placed;
        }

        Assert.Equal(Run(11), Run(11));
    }

    [Fact]
    public void Place_TargetNode_HonouredExactlyOrRefusedWithItsReason()
    {
        var (_, scheduler) = CreateSut(null, Node(1, memoryGiB: 8), Node(2, memoryGiB: 64));
        Assert.Equal(Fleets.Id(1), scheduler.Place(Vm(memoryGiB: 4, target: Fleets.Id(1))).Node);

        var refused = scheduler.Place(Vm(memoryGiB: 16, target: Fleets.Id(1)));
        Assert.False(refused.Succeeded);
        Assert.Contains("memory: needs 16 GiB, 4 GiB free of 8 GiB", refused.Refusal!.Summary, StringComparison.Ordinal);
        Assert.Equal(2, refused.Refusal.RejectedTotal);
        Assert.Contains(refused.Refusal.NearMisses, m => m.Filter == "target-node" && m.Nodes == 1);
    }

    [Fact]
    public void Explain_NoAarch64GpuNode_SaysSoStructurally()
    {
        var (_, scheduler) = CreateSut(null,
            Node(1, arch: CpuArchitecture.Aarch64), Node(2, arch: CpuArchitecture.X86_64, gpus: 2, gpuModel: "nvidia-t4"),
            Node(3, arch: CpuArchitecture.Aarch64, gpus: 1, online: false));
        var r = scheduler.Place(Vm(arch: CpuArchitecture.Aarch64, gpus: 1));
        Assert.False(r.Succeeded);
        Assert.Equal("no online aarch64 node has a GPU", r.Refusal!.StructuralReason);
        Assert.Contains("no online aarch64 node has a GPU", r.Refusal.Summary, StringComparison.Ordinal);
        Assert.Equal(3, r.Refusal.RejectedTotal);
        Assert.Contains(r.Refusal.NearMisses, m => m.Filter == "online" && m.Nodes == 1);
    }

    [Fact]
    public void Explain_MemoryShortfall_NamesNodesRegionAndDelta()
    {
        var (_, scheduler) = CreateSut(null,
            Node(1, memoryGiB: 6), Node(2, memoryGiB: 6), Node(3, memoryGiB: 6), Node(4, memoryGiB: 7), Node(5, memoryGiB: 64, region: "us-east"));
        var r = scheduler.Place(Vm(memoryGiB: 8, region: "eu-west"));
        Assert.False(r.Succeeded);
        var refusal = r.Refusal!;
        var memory = Assert.Single(refusal.NearMisses, m => m.Filter == "memory");
        Assert.Equal("1 node in eu-west would fit with 1 GiB less memory (4 with up to 2 GiB less)", memory.Message);
        Assert.Contains(refusal.NearMisses, m => m is { Filter: "region", Nodes: 1 } && m.Message.StartsWith("1 node in us-east would fit", StringComparison.Ordinal));
        Assert.Equal(new FilterRejection("region", 1), refusal.Rejections.Single(x => x.Filter == "region"));
        Assert.Equal(new FilterRejection("memory", 4), refusal.Rejections.Single(x => x.Filter == "memory"));
        Assert.Equal("no online node in eu-west has 8 GiB of memory", refusal.StructuralReason);
    }

    [Fact]
    public void Explain_FleetFull_SaysCapacityIsTakenAndNearestMiss()
    {
        var (_, scheduler) = CreateSut(null, Node(1, points: 4), Node(2, points: 4));
        Assert.True(scheduler.Place(Vm(points: 3)).Succeeded);
        Assert.True(scheduler.Place(Vm(points: 3)).Succeeded);
        var r = scheduler.Place(Vm(points: 2));
        Assert.Null(r.Refusal!.StructuralReason);
        Assert.Contains("2 nodes could host it when empty", r.Refusal.Summary, StringComparison.Ordinal);
        Assert.Equal("2 nodes would fit with 1 Dedicated compute point fewer", r.Refusal.NearMisses[0].Message);
    }

    [Fact]
    public void Explain_EmptyInventory_IsNotABareNoNode()
    {
        var (_, scheduler) = CreateSut();
        var r = scheduler.Place(Vm());
        Assert.Equal("the inventory has no nodes", r.Refusal!.StructuralReason);
        Assert.Equal(0, r.Refusal.InventorySize);
    }

    [Fact]
    public void Place_PriceCap_FiltersByTotalHourlyPrice()
    {
        var options = new SchedulerOptions();
        var (_, scheduler) = CreateSut(options, Node(1, pricePerPoint: 10_000), Node(2, pricePerPoint: 100_000));
        // 2 Dedicated points + 4 GiB + 10 GiB storage at Basic bandwidth (x0.8, +2,000): node 1 = (20,000 + 4,000 + 100) * 0.8 + 2,000 = 21,280.
        var request = new PlacementRequest { VmId = VmId.New(), Resources = new Resources(2, 4096, 10), QualityTier = QualityTier.Dedicated, MaxHourlyPriceMicroUsdc = 21_280 };
        Assert.Equal(Fleets.Id(1), scheduler.Place(request, PlacementMode.DryRun).Node);
        var tooLow = new PlacementRequest { VmId = VmId.New(), Resources = new Resources(2, 4096, 10), QualityTier = QualityTier.Dedicated, MaxHourlyPriceMicroUsdc = 21_279 };
        var refused = scheduler.Place(tooLow);
        Assert.Contains(refused.Refusal!.NearMisses, m => m.Filter == "price" && m.Shortfall == 1);
    }

    [Fact]
    public void PlaceGang_Distinct_AllOrNothing()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1), Node(2), Node(3));
        var gang = scheduler.PlaceGang([Vm(points: 8), Vm(points: 8), Vm(points: 8)], distinctNodes: true);
        Assert.True(gang.Succeeded);
        Assert.Equal(3, gang.Placements.Select(p => p.Node).Distinct().Count());

        var refused = scheduler.PlaceGang([Vm(points: 4), Vm(points: 4), Vm(points: 9)], distinctNodes: true);
        Assert.False(refused.Succeeded);
        Assert.Equal(2, refused.Refusal!.GangMember);
        foreach (var id in inventory.GetNodeIds())
        {
            Assert.Equal(96, inventory.GetUsage(id).Allocated.CpuTwelfths); // only the first gang
        }
    }

    [Fact]
    public void PlaceGang_NotDistinct_SharesNodesAndDryRunHoldsNothing()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1));
        var gang = scheduler.PlaceGang([Vm(points: 4), Vm(points: 4), Vm(points: 8)], mode: PlacementMode.DryRun);
        Assert.True(gang.Succeeded);
        Assert.All(gang.Placements, p => Assert.Equal(Fleets.Id(1), p.Node));
        Assert.Equal(0, inventory.GetUsage(Fleets.Id(1)).Allocated.CpuTwelfths);
        Assert.False(scheduler.PlaceGang([Vm(points: 8), Vm(points: 9)], mode: PlacementMode.DryRun).Succeeded);
    }

    [Fact]
    public void ProposeRescheduling_OfflineNode_ProposesOtherNodesForEachVm()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1), Node(2), Node(3, points: 2));
        var a = scheduler.Place(Vm(points: 6, target: Fleets.Id(1)));
        var b = scheduler.Place(Vm(points: 4, target: Fleets.Id(1)));
        inventory.SetOnline(Fleets.Id(1), false);

        var proposals = scheduler.ProposeRescheduling(Fleets.Id(1));
        Assert.Equal(2, proposals.Count);
        Assert.All(proposals, p => Assert.True(p.Proposed.Succeeded));
        Assert.All(proposals, p => Assert.NotEqual(Fleets.Id(1), p.Proposed.Node));
        Assert.Equal([a.Reservation, b.Reservation], proposals.Select(p => p.Current)); // largest first
        Assert.Equal(120, inventory.GetUsage(Fleets.Id(2)).Held.CpuTwelfths);
    }

    [Fact]
    public void Remove_NodeWithPlacements_DropsThemAndLaterReleaseIsNoOp()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1));
        var r = scheduler.Place(Vm());
        Assert.True(inventory.Remove(Fleets.Id(1)));
        Assert.False(inventory.Remove(Fleets.Id(1)));
        Assert.False(scheduler.Release(r.Reservation));
        Assert.Equal(0, inventory.Count);
    }

    [Fact]
    public void SetCapacity_Shrink_KeepsPlacementsAndStopsNewWork()
    {
        var (inventory, scheduler) = CreateSut(null, Node(1, points: 8));
        Assert.True(scheduler.Place(Vm(points: 6)).Succeeded);
        inventory.SetCapacity(Fleets.Id(1), new Resources(4, 32 * 1024, 500));
        var usage = inventory.GetUsage(Fleets.Id(1));
        Assert.Equal(72, usage.Allocated.CpuTwelfths);
        Assert.Equal(-24, usage.Free.CpuTwelfths);
        Assert.Equal(usage.Capacity, usage.Free + usage.Held + usage.Allocated);
        Assert.False(scheduler.Place(Vm(points: 1)).Succeeded);
    }

    [Fact]
    public void Place_SteadyState_AllocatesNothing()
    {
        var rng = new Random(3);
        var inventory = new NodeInventory();
        for (var i = 0; i < 2_000; i++)
        {
            inventory.Upsert(Fleets.Node(rng, i) with { IsOnline = true });
        }

        var scheduler = new VmScheduler(inventory);
        var requests = Enumerable.Range(0, 64).Select(_ => Fleets.Request(rng)).Select(r => new PlacementRequest
        {
            VmId = r.VmId,
            Resources = r.Resources with { Gpus = 0, GpuModel = null },
            QualityTier = r.QualityTier,
            Region = r.Region,
            RequiredTags = r.RequiredTags,
        }).ToArray();
        var live = new ReservationId[256];

        void Loop(int count)
        {
            for (var i = 0; i < count; i++)
            {
                var slot = i % live.Length;
                scheduler.Release(live[slot]);
                live[slot] = scheduler.Place(requests[i % requests.Length]).Reservation;
            }
        }

        Loop(5_000);
        var before = GC.GetAllocatedBytesForCurrentThread();
        Loop(20_000);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void CustomFilterAndScorer_AreAppliedAndExplained()
    {
        var inventory = new NodeInventory(_time);
        inventory.Upsert(Node(1));
        inventory.Upsert(Node(2));
        inventory.Upsert(Node(3));
        var scheduler = new VmScheduler(inventory, new SchedulerOptions { PackWeight = 0 }, [new NotNode(Fleets.Id(1))], [new PreferNode(Fleets.Id(3))]);
        Assert.Equal(Fleets.Id(3), scheduler.Place(Vm()).Node);

        var refused = scheduler.Place(Vm(target: Fleets.Id(1)));
        Assert.Contains("not-node: rejected by this filter", refused.Refusal!.Summary, StringComparison.Ordinal);
        Assert.Contains(refused.Refusal.Rejections, r => r.Filter == "not-node" && r.Nodes == 1);
    }

    [Fact]
    public void AddDeCloudScheduler_Twice_RegistersOnceAndResolves()
    {
        var services = new ServiceCollection();
        services.AddDeCloudScheduler(o => o.CandidatesToScore = 4).AddFilter<AcceptAll>();
        services.AddDeCloudScheduler().AddFilter<AcceptAll>();
        Assert.Single(services, d => d.ServiceType == typeof(VmScheduler));
        Assert.Single(services, d => d.ServiceType == typeof(NodeInventory));
        Assert.Single(services, d => d.ServiceType == typeof(IPlacementFilter));
        using var sp = services.BuildServiceProvider();
        var scheduler = sp.GetRequiredService<VmScheduler>();
        Assert.Same(sp.GetRequiredService<NodeInventory>(), scheduler.Inventory);
    }

    [Fact]
    public void AddDeCloudScheduler_InvalidOptions_FailNamingTheProperty()
    {
        var services = new ServiceCollection();
        services.AddDeCloudScheduler(o => o.CandidatesToScore = 0);
        using var sp = services.BuildServiceProvider();
        var ex = Assert.Throws<DeCloudValidationException>(() => sp.GetRequiredService<VmScheduler>());
        Assert.Equal("CandidatesToScore", ex.Field);
    }

    private sealed class NotNode(NodeId id) : IPlacementFilter
    {
        public string Name => "not-node";

        public int Cost => 50;

        public bool Accepts(in NodeView node, PlacementRequest request) => node.Id != id;
    }

    private sealed class PreferNode(NodeId id) : IPlacementScorer
    {
        public string Name => "prefer";

        public double Weight => 10;

        public double Score(in NodeView node, PlacementRequest request) => node.Id == id ? 1 : 0;
    }

    private sealed class AcceptAll : IPlacementFilter
    {
        public string Name => "all";

        public int Cost => 0;

        public bool Accepts(in NodeView node, PlacementRequest request) => true;
    }
}
