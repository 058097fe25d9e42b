using System.Security.Cryptography;
using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;

namespace DeCloud.Benchmarks.Scheduler;

/// <summary>The workload shapes of the scheduler benchmarks.</summary>
public enum SchedulerShape
{
    /// <summary>Any region, x86_64, small VMs.</summary>
    Uniform,

    /// <summary>Every request pinned to one of 16 regions.</summary>
    RegionPinned,

    /// <summary>Requests need a GPU of one model; 2 % of nodes have GPUs.</summary>
    GpuScarce,

    /// <summary>Every request needs a public IP (35 % of nodes have one).</summary>
    PublicIpOnly,

    /// <summary>Each request names its node.</summary>
    TargetNode,

    /// <summary>The fleet is 90 % full before measuring.</summary>
    NinetyPercentFull,

    /// <summary>Every hard filter in play: region, architecture, tags, price cap, uptime, public IP, bandwidth.</summary>
    AllFilters,

    /// <summary>Nothing fits (memory larger than any node): measures the explanation.</summary>
    Infeasible,
}

/// <summary>A deterministic random fleet and request pool for one shape.</summary>
public sealed class SchedulerFleet
{
    public static readonly string[] Regions = Enumerable.Range(0, 16).Select(i => $"region-{i:00}").ToArray();
    private static readonly string[] TagPool = ["ssd", "nvme", "sgx", "eu-gdpr", "green", "10g"];

    public SchedulerFleet(int nodes, SchedulerShape shape, int seed = 42, int requests = 4096)
    {
        var rng = new Random(seed);
        Inventory = new NodeInventory();
        Scheduler = new VmScheduler(Inventory, new SchedulerOptions { Seed = (ulong)seed });
        Nodes = new NodeId[nodes];
        for (var i = 0; i < nodes; i++)
        {
            var gpu = rng.NextDouble() < 0.02;
            var tags = new List<string>();
            foreach (var t in TagPool)
            {
                if (rng.NextDouble() < 0.4)
                {
                    tags.Add(t);
                }
            }

            Nodes[i] = NodeIdOf(seed, i);
            Inventory.Upsert(new NodeSnapshot
            {
                Id = Nodes[i],
                Capacity = new Resources(rng.Next(8, 129), rng.Next(16, 513) * 1024L, rng.Next(200, 4001), gpu ? rng.Next(1, 9) : 0, gpu ? (rng.Next(2) == 0 ? "nvidia-a100" : "nvidia-t4") : null),
                Region = Regions[rng.Next(Regions.Length)],
                Tags = tags,
                Architecture = rng.NextDouble() < 0.85 ? CpuArchitecture.X86_64 : CpuArchitecture.Aarch64,
                Price = new NodePrice(rng.Next(5_000, 20_000), rng.Next(1_000, 5_000), rng.Next(10, 100), gpu ? rng.Next(500_000, 2_000_000) : 0),
                UptimeBasisPoints = rng.Next(9_000, 10_001),
                HasPublicIp = rng.NextDouble() < 0.35,
                MaxBandwidthTier = (BandwidthTier)rng.Next(1, 4),
                IsOnline = rng.NextDouble() < 0.98,
            });
        }

        Requests = new PlacementRequest[requests];
        for (var i = 0; i < requests; i++)
        {
            Requests[i] = Request(rng, shape, i);
        }

        if (shape == SchedulerShape.NinetyPercentFull)
        {
            Fill(rng, 0.9);
        }
    }

    public NodeInventory Inventory { get; }

    public VmScheduler Scheduler { get; }

    public NodeId[] Nodes { get; }

    public PlacementRequest[] Requests { get; }

    public static NodeId NodeIdOf(int seed, int i) =>
        NodeId.Parse(Convert.ToHexStringLower(SHA256.HashData(BitConverter.GetBytes(((long)seed << 32) | (uint)i))));

    private PlacementRequest Request(Random rng, SchedulerShape shape, int i)
    {
        var tier = (QualityTier)rng.Next(4);
        var resources = new Resources(rng.Next(1, 9), rng.Next(1, 17) * 1024L, rng.Next(10, 201));
        return shape switch
        {
            SchedulerShape.RegionPinned => new PlacementRequest { VmId = VmId.New(), Resources = resources, QualityTier = tier, Region = Regions[rng.Next(Regions.Length)] },
            SchedulerShape.GpuScarce => new PlacementRequest { VmId = VmId.New(), Resources = resources with { Gpus = 1, GpuModel = "nvidia-t4" }, QualityTier = tier },
            SchedulerShape.PublicIpOnly => new PlacementRequest { VmId = VmId.New(), Resources = resources, QualityTier = tier, RequiresPublicIp = true },
            SchedulerShape.TargetNode => new PlacementRequest { VmId = VmId.New(), Resources = resources with { ComputePoints = 1, MemoryMiB = 1024 }, QualityTier = QualityTier.Burstable, TargetNode = Nodes[rng.Next(Nodes.Length)] },
            SchedulerShape.AllFilters => new PlacementRequest
            {
                VmId = VmId.New(),
                Resources = resources,
                QualityTier = tier,
                Region = Regions[rng.Next(Regions.Length)],
                Architecture = CpuArchitecture.X86_64,
                RequiredTags = [TagPool[rng.Next(2)]],
                MaxHourlyPriceMicroUsdc = 400_000,
                MinUptimeBasisPoints = 9_300,
                RequiresPublicIp = rng.NextDouble() < 0.3,
                BandwidthTier = BandwidthTier.Standard,
            },
            SchedulerShape.Infeasible => new PlacementRequest { VmId = VmId.New(), Resources = resources with { MemoryMiB = 600 * 1024 }, QualityTier = tier, Region = Regions[rng.Next(Regions.Length)] },
            _ => new PlacementRequest { VmId = VmId.New(), Resources = resources, QualityTier = tier, Architecture = CpuArchitecture.X86_64 },
        };
    }

    /// <summary>Commits uniform small VMs until the fleet's CPU is about <paramref name="fraction"/> used.</summary>
    private void Fill(Random rng, double fraction)
    {
        long cap = 0;
        foreach (var n in Nodes)
        {
            cap += Inventory.GetUsage(n).Capacity.CpuTwelfths;
        }

        long used = 0;
        var filler = new PlacementRequest { VmId = VmId.New(), Resources = new Resources(2, 2048, 20), QualityTier = QualityTier.Dedicated, Strategy = PlacementStrategy.Spread };
        while (used < cap * fraction && Scheduler.Place(filler).Succeeded)
        {
            used += 24;
        }

        _ = rng;
    }
}
