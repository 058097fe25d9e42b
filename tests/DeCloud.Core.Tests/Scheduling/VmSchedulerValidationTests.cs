using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Scheduling;

public sealed class VmSchedulerValidationTests
{
    private static (NodeInventory Inventory, VmScheduler Scheduler) CreateSut(SchedulerOptions? options = null)
    {
        var inventory = new NodeInventory(new FakeTimeProvider());
        var rng = new Random(5);
        for (var i = 0; i < 5; i++)
        {
            inventory.Upsert(Fleets.Node(rng, i) with { IsOnline = true, Capacity = new Resources(16, 32 * 1024, 500) });
        }

        return (inventory, new VmScheduler(inventory, options));
    }

    private static PlacementRequest Valid() => new() { VmId = VmId.New(), Resources = new Resources(2, 2048, 10) };

    private static string Usage(NodeInventory inventory) =>
        string.Join("|", inventory.GetNodeIds().Order(Comparer<NodeId>.Create((a, b) => string.CompareOrdinal(a.Value, b.Value))).Select(n => inventory.GetUsage(n).ToString()));

    public static TheoryData<string, Func<PlacementRequest, PlacementRequest>> BadRequests => new()
    {
        { "resources.computePoints", r => Copy(r, res: r.Resources with { ComputePoints = 0 }) },
        { "resources.computePoints", r => Copy(r, res: r.Resources with { ComputePoints = -3 }) },
        { "resources.memoryMiB", r => Copy(r, res: r.Resources with { MemoryMiB = 0 }) },
        { "resources.storageGiB", r => Copy(r, res: r.Resources with { StorageGiB = -1 }) },
        { "resources.gpus", r => Copy(r, res: r.Resources with { Gpus = -1 }) },
        { "resources.gpuModel", r => Copy(r, res: r.Resources with { GpuModel = "nvidia-a100" }) },
        { "resources.gpuModel", r => Copy(r, res: r.Resources with { Gpus = 1, GpuModel = "bad/model" }) },
        { "qualityTier", r => Copy(r, tier: (QualityTier)9) },
        { "bandwidthTier", r => Copy(r, bandwidth: (BandwidthTier)(-1)) },
        { "architecture", r => Copy(r, arch: (CpuArchitecture)7) },
        { "minUptimeBasisPoints", r => Copy(r, uptime: 10_001) },
        { "region", r => Copy(r, region: "eu west!") },
        { "requiredTags", r => Copy(r, tags: ["ssd", "no spaces"]) },
        { "targetNode", r => Copy(r, target: Fleets.Id(999)) },
        { "maxHourlyPriceMicroUsdc", r => Copy(r, cap: 1_000) }, // below the Basic bandwidth rate alone (2,000)
        { "maxHourlyPriceMicroUsdc", r => Copy(r, cap: -1) },
        { "vmId", r => Copy(r, vm: default(VmId)) },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public void Place_BadRequest_ThrowsNamingFieldAndLeavesInventoryUnchanged(string field, Func<PlacementRequest, PlacementRequest> corrupt)
    {
        var (inventory, scheduler) = CreateSut();
        scheduler.Place(Valid());
        var before = Usage(inventory);
        foreach (var mode in new[] { PlacementMode.DryRun, PlacementMode.Hold, PlacementMode.Commit })
        {
            var ex = Assert.Throws<DeCloudValidationException>(() => scheduler.Place(corrupt(Valid()), mode));
            Assert.Equal(field, ex.Field);
            Assert.StartsWith(field + ": ", ex.Message, StringComparison.Ordinal);
        }

        var gang = Assert.Throws<DeCloudValidationException>(() => scheduler.PlaceGang([Valid(), corrupt(Valid())]));
        Assert.EndsWith(field, gang.Field, StringComparison.Ordinal);
        Assert.Equal(before, Usage(inventory));
    }

    [Fact]
    public void Place_CapBelowPlatformFloor_IsRejectedWithTheFloor()
    {
        var (_, scheduler) = CreateSut(new SchedulerOptions { PriceFloor = new NodePrice(50_000, 0, 0, 0) });
        var ex = Assert.Throws<DeCloudValidationException>(() => scheduler.Place(Copy(Valid(), cap: 50_000)));
        Assert.Contains("below the platform floor of 55334 micro-USDC/h", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PlaceGang_LargerThanFleet_IsRejected()
    {
        var (inventory, scheduler) = CreateSut();
        var before = Usage(inventory);
        var ex = Assert.Throws<DeCloudValidationException>(() => scheduler.PlaceGang(Enumerable.Range(0, 6).Select(_ => Valid()).ToList(), distinctNodes: true));
        Assert.Equal("members", ex.Field);
        Assert.Contains("only 5 nodes", ex.Message, StringComparison.Ordinal);
        Assert.Throws<DeCloudValidationException>(() => scheduler.PlaceGang([]));
        Assert.Equal(before, Usage(inventory));
    }

    [Fact]
    public void Upsert_BadSnapshot_ThrowsNamingFieldAndKeepsTheOldNode()
    {
        var (inventory, _) = CreateSut();
        var id = inventory.GetNodeIds()[0];
        var before = Usage(inventory);
        var good = new NodeSnapshot { Id = id, Capacity = new Resources(4, 1024, 10), Region = "eu-west" };
        Assert.Equal("node.capacity.memoryMiB", Assert.Throws<DeCloudValidationException>(() => inventory.Upsert(good with { Capacity = new Resources(4, -1, 10) })).Field);
        Assert.Equal("node.region", Assert.Throws<DeCloudValidationException>(() => inventory.Upsert(good with { Region = "" })).Field);
        Assert.Equal("node.tags", Assert.Throws<DeCloudValidationException>(() => inventory.Upsert(good with { Tags = ["a b"] })).Field);
        Assert.Equal("node.uptimeBasisPoints", Assert.Throws<DeCloudValidationException>(() => inventory.Upsert(good with { UptimeBasisPoints = -1 })).Field);
        Assert.Equal("node.price.perGpu", Assert.Throws<DeCloudValidationException>(() => inventory.Upsert(good with { Price = new NodePrice(0, 0, 0, -5) })).Field);
        Assert.Equal("node.maxBandwidthTier", Assert.Throws<DeCloudValidationException>(() => inventory.Upsert(good with { MaxBandwidthTier = (BandwidthTier)8 })).Field);
        Assert.Equal("nodeId", Assert.Throws<DeCloudValidationException>(() => inventory.SetOnline(Fleets.Id(12345), false)).Field);
        Assert.Equal(before, Usage(inventory));
    }

    [Fact]
    public void Options_Invalid_ThrowNamingProperty()
    {
        var inventory = new NodeInventory();
        Assert.Equal("HoldDuration", Assert.Throws<DeCloudValidationException>(() => new VmScheduler(inventory, new SchedulerOptions { HoldDuration = TimeSpan.Zero })).Field);
        Assert.Equal("PriceWeight", Assert.Throws<DeCloudValidationException>(() => new VmScheduler(inventory, new SchedulerOptions { PriceWeight = double.NaN })).Field);
        Assert.Equal("Strategy", Assert.Throws<DeCloudValidationException>(() => new VmScheduler(inventory, new SchedulerOptions { Strategy = (PlacementStrategy)5 })).Field);
    }

    private static PlacementRequest Copy(PlacementRequest r, Resources? res = null, QualityTier? tier = null, BandwidthTier? bandwidth = null, CpuArchitecture? arch = null,
        int? uptime = null, string? region = null, string[]? tags = null, NodeId? target = null, long? cap = null, VmId? vm = null) => new()
    {
        VmId = vm ?? r.VmId,
        Resources = res ?? r.Resources,
        QualityTier = tier ?? r.QualityTier,
        BandwidthTier = bandwidth ?? r.BandwidthTier,
        Architecture = arch ?? r.Architecture,
        MinUptimeBasisPoints = uptime ?? r.MinUptimeBasisPoints,
        Region = region ?? r.Region,
        RequiredTags = tags ?? r.RequiredTags,
        TargetNode = target ?? r.TargetNode,
        MaxHourlyPriceMicroUsdc = cap ?? r.MaxHourlyPriceMicroUsdc,
    };
}
