using System.Security.Cryptography;
using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;

namespace DeCloud.Core.Tests.Scheduling;

/// <summary>Random fleets and requests over a small vocabulary, so every filter both passes and fails often.</summary>
internal static class Fleets
{
    public static readonly string[] Regions = ["eu-west", "us-east", "ap-south"];
    public static readonly string[] Tags = ["ssd", "nvme", "sgx"];
    public static readonly string?[] GpuModels = ["nvidia-a100", "nvidia-t4", null];

    public static NodeId Id(int i) => NodeId.Parse(Convert.ToHexStringLower(SHA256.HashData(BitConverter.GetBytes(i))));

    public static NodeSnapshot Node(Random rng, int i)
    {
        var gpus = rng.Next(4) == 0 ? rng.Next(1, 5) : 0;
        var tags = new List<string>();
        foreach (var t in Tags)
        {
            if (rng.Next(2) == 0)
            {
                tags.Add(t);
            }
        }

        return new NodeSnapshot
        {
            Id = Id(i),
            Capacity = new Resources(rng.Next(0, 17), rng.Next(0, 33) * 1024L, rng.Next(0, 501), gpus, gpus > 0 ? GpuModels[rng.Next(3)] : null),
            Region = Regions[rng.Next(Regions.Length)],
            Tags = tags,
            Architecture = (CpuArchitecture)rng.Next(2),
            Price = new NodePrice(rng.Next(0, 20_000), rng.Next(0, 5_000), rng.Next(0, 100), rng.Next(0, 1_000_000)),
            UptimeBasisPoints = rng.Next(8_000, 10_001),
            HasPublicIp = rng.Next(2) == 0,
            MaxBandwidthTier = (BandwidthTier)rng.Next(4),
            IsOnline = rng.Next(8) != 0,
        };
    }

    public static PlacementRequest Request(Random rng, IReadOnlyList<NodeSnapshot>? targets = null)
    {
        var gpus = rng.Next(5) == 0 ? rng.Next(1, 3) : 0;
        var tags = new List<string>();
        if (rng.Next(3) == 0)
        {
            tags.Add(Tags[rng.Next(Tags.Length)]);
        }

        return new PlacementRequest
        {
            VmId = VmId.New(),
            Resources = new Resources(rng.Next(1, 9), rng.Next(1, 17) * 512L, rng.Next(1, 201), gpus, gpus > 0 && rng.Next(2) == 0 ? GpuModels[rng.Next(2)] : null),
            QualityTier = (QualityTier)rng.Next(4),
            BandwidthTier = (BandwidthTier)rng.Next(4),
            Architecture = rng.Next(3) switch { 0 => CpuArchitecture.X86_64, 1 => CpuArchitecture.Aarch64, _ => null },
            Region = rng.Next(2) == 0 ? Regions[rng.Next(Regions.Length)] : null,
            RequiredTags = tags,
            MaxHourlyPriceMicroUsdc = rng.Next(3) == 0 ? rng.Next(50_000, 400_000) : null,
            MinUptimeBasisPoints = rng.Next(3) == 0 ? rng.Next(8_000, 10_001) : 0,
            RequiresPublicIp = rng.Next(3) == 0,
            TargetNode = targets is { Count: > 0 } && rng.Next(10) == 0 ? targets[rng.Next(targets.Count)].Id : null,
            Strategy = rng.Next(2) == 0 ? PlacementStrategy.BinPack : PlacementStrategy.Spread,
        };
    }
}

/// <summary>
/// The brute-force oracle: the hard filters written out from first principles over the test's own
/// record of each node's free resources, independent of the scheduler's indexes and packed attributes.
/// </summary>
internal sealed class Oracle
{
    private readonly Dictionary<NodeId, NodeSnapshot> _nodes = [];
    private readonly Dictionary<NodeId, (long Cpu, long Mem, long Sto, int Gpu)> _used = [];
    private readonly Dictionary<ReservationId, (NodeId Node, long Cpu, long Mem, long Sto, int Gpu)> _live = [];

    public IEnumerable<NodeSnapshot> Nodes => _nodes.Values;

    public void Add(NodeSnapshot node)
    {
        _nodes[node.Id] = node;
        _used.TryAdd(node.Id, default);
    }

    public static long Twelfths(PlacementRequest r) => (long)r.Resources.ComputePoints * r.QualityTier switch
    {
        QualityTier.Dedicated => 12,
        QualityTier.Standard => 8,
        QualityTier.Balanced => 6,
        _ => 3,
    };

    public static decimal Price(NodeSnapshot n, PlacementRequest r)
    {
        static decimal Ceil(decimal x) => decimal.Ceiling(x);
        var res = r.Resources;
        var resource = Ceil(n.Price.PerComputePoint * Twelfths(r) / 12m) + Ceil(n.Price.PerGiBMemory * res.MemoryMiB / 1024m)
            + (n.Price.PerGiBStorage * res.StorageGiB) + (n.Price.PerGpu * res.Gpus);
        var spec = BandwidthTierCatalog.Default[r.BandwidthTier];
        return Ceil(resource * spec.PriceMultiplier) + Ceil(spec.HourlyRateUsdc * 1_000_000m);
    }

    public bool Fits(NodeSnapshot n, PlacementRequest r)
    {
        var used = _used[n.Id];
        var res = r.Resources;
        return n.IsOnline
            && (r.TargetNode is null || r.TargetNode == n.Id)
            && (r.Architecture is null || r.Architecture == n.Architecture)
            && (r.Region is null || string.Equals(r.Region, n.Region, StringComparison.OrdinalIgnoreCase))
            && (!r.RequiresPublicIp || n.HasPublicIp)
            && r.BandwidthTier <= n.MaxBandwidthTier
            && (res.GpuModel is null || (n.Capacity.Gpus > 0 && string.Equals(res.GpuModel, n.Capacity.GpuModel, StringComparison.OrdinalIgnoreCase)))
            && n.UptimeBasisPoints >= r.MinUptimeBasisPoints
            && (r.RequiredTags ?? []).All(t => n.Tags.Contains(t, StringComparer.OrdinalIgnoreCase))
            && (r.MaxHourlyPriceMicroUsdc is null || Price(n, r) <= r.MaxHourlyPriceMicroUsdc)
            && (n.Capacity.ComputePoints * 12L) - used.Cpu >= Twelfths(r)
            && n.Capacity.MemoryMiB - used.Mem >= res.MemoryMiB
            && n.Capacity.StorageGiB - used.Sto >= res.StorageGiB
            && n.Capacity.Gpus - used.Gpu >= res.Gpus;
    }

    public int CountFitting(PlacementRequest r) => _nodes.Values.Count(n => Fits(n, r));

    public void Record(ReservationId id, NodeId node, PlacementRequest r)
    {
        var u = _used[node];
        _used[node] = (u.Cpu + Twelfths(r), u.Mem + r.Resources.MemoryMiB, u.Sto + r.Resources.StorageGiB, u.Gpu + r.Resources.Gpus);
        _live[id] = (node, Twelfths(r), r.Resources.MemoryMiB, r.Resources.StorageGiB, r.Resources.Gpus);
    }

    public void Forget(ReservationId id)
    {
        if (_live.Remove(id, out var x))
        {
            var u = _used[x.Node];
            _used[x.Node] = (u.Cpu - x.Cpu, u.Mem - x.Mem, u.Sto - x.Sto, u.Gpu - x.Gpu);
        }
    }

    public IReadOnlyCollection<ReservationId> Live => _live.Keys;

    /// <summary>The inventory agrees with the recorded placements node by node, and nothing is overcommitted.</summary>
    public void AssertMatches(NodeInventory inventory)
    {
        foreach (var n in _nodes.Values)
        {
            var usage = inventory.GetUsage(n.Id);
            var u = _used[n.Id];
            Assert.Equal(new ResourceAmounts(u.Cpu, u.Mem, u.Sto, u.Gpu), usage.Held + usage.Allocated);
            Assert.Equal(usage.Capacity, usage.Free + usage.Held + usage.Allocated);
            Assert.True(usage.Free.CpuTwelfths >= 0 && usage.Free.MemoryMiB >= 0 && usage.Free.StorageGiB >= 0 && usage.Free.Gpus >= 0, $"node {n.Id} is overcommitted: {usage}");
        }
    }
}
