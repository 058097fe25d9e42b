using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>How the scheduler orders nodes that pass every hard filter.</summary>
public enum PlacementStrategy
{
    /// <summary>Fill the fullest node that fits first (best fit on CPU), keeping whole nodes free for large VMs.</summary>
    BinPack = 0,

    /// <summary>Use the emptiest node first, spreading load.</summary>
    Spread = 1,
}

/// <summary>What a placement call does with the node it chooses.</summary>
public enum PlacementMode
{
    /// <summary>Decide only: nothing is held (dry run).</summary>
    DryRun = 0,

    /// <summary>Hold the resources until the hold is committed, released or expires.</summary>
    Hold = 1,

    /// <summary>Allocate the resources at once (decide and commit).</summary>
    Commit = 2,
}

/// <summary>
/// One VM to place. Every property is a hard requirement except <see cref="Strategy"/>. Reuse an instance
/// freely: the scheduler never changes it.
/// </summary>
public sealed class PlacementRequest
{
    /// <summary>The VM being placed.</summary>
    public required VmId VmId { get; init; }

    /// <summary>Compute points, memory, storage, GPU count and optional GPU model.</summary>
    public required Resources Resources { get; init; }

    /// <summary>The CPU quality tier: how many twelfths of a node point each requested point consumes.</summary>
    public QualityTier QualityTier { get; init; } = QualityTier.Standard;

    /// <summary>The bandwidth tier; the node must offer it.</summary>
    public BandwidthTier BandwidthTier { get; init; } = BandwidthTier.Basic;

    /// <summary>The architecture, or null for any.</summary>
    public CpuArchitecture? Architecture { get; init; }

    /// <summary>The region, or null for any.</summary>
    public string? Region { get; init; }

    /// <summary>Tags the node must carry (all of them).</summary>
    public IReadOnlyList<string>? RequiredTags { get; init; }

    /// <summary>The most the VM may cost per hour, in micro-USDC, including the bandwidth tier; null for no cap.</summary>
    public long? MaxHourlyPriceMicroUsdc { get; init; }

    /// <summary>The least 30-day uptime the node must have, in basis points (0-10,000).</summary>
    public int MinUptimeBasisPoints { get; init; }

    /// <summary>True when the VM needs a node with a public IP; false accepts a relayed (CGNAT) node too.</summary>
    public bool RequiresPublicIp { get; init; }

    /// <summary>A node the user picked: honoured exactly, or the placement fails with that node's reason.</summary>
    public NodeId? TargetNode { get; init; }

    /// <summary>Overrides <see cref="SchedulerOptions.Strategy"/> for this request.</summary>
    public PlacementStrategy? Strategy { get; init; }
}
