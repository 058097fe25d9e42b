using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>
/// Hourly prices a node's operator asks, in micro-USDC (10^-6 USDC) per hour. A VM's price on a node is
/// <c>ceil(PerComputePoint * twelfths / 12) + ceil(PerGiBMemory * MiB / 1024) + PerGiBStorage * GiB + PerGpu * gpus</c>,
/// where <c>twelfths</c> is the node CPU the VM's quality tier consumes, so a Burstable point costs a quarter of a Dedicated one.
/// </summary>
/// <param name="PerComputePoint">Price of one whole node compute point per hour.</param>
/// <param name="PerGiBMemory">Price of one GiB of memory per hour.</param>
/// <param name="PerGiBStorage">Price of one GiB of storage per hour.</param>
/// <param name="PerGpu">Price of one GPU per hour.</param>
public readonly record struct NodePrice(long PerComputePoint, long PerGiBMemory, long PerGiBStorage, long PerGpu)
{
    /// <summary>The largest accepted rate: 1,000 USDC per unit and hour.</summary>
    public const long MaxRateMicroUsdc = 1_000_000_000;

    /// <summary>Throws <see cref="DeCloudValidationException"/> naming the rate that is negative or absurd.</summary>
    public void Validate(string prefix = "price")
    {
        Model.Validate.Range(PerComputePoint, 0, MaxRateMicroUsdc, prefix + ".perComputePoint");
        Model.Validate.Range(PerGiBMemory, 0, MaxRateMicroUsdc, prefix + ".perGiBMemory");
        Model.Validate.Range(PerGiBStorage, 0, MaxRateMicroUsdc, prefix + ".perGiBStorage");
        Model.Validate.Range(PerGpu, 0, MaxRateMicroUsdc, prefix + ".perGpu");
    }

    /// <summary>The hourly price in micro-USDC of a VM using the given amounts (CPU in twelfths of a node point).</summary>
    public long PriceOf(long cpuTwelfths, long memoryMiB, long storageGiB, int gpus) =>
        CeilDiv(PerComputePoint * cpuTwelfths, QualityTiers.TwelfthsPerNodePoint)
        + CeilDiv(PerGiBMemory * memoryMiB, 1024)
        + (PerGiBStorage * storageGiB)
        + (PerGpu * gpus);

    /// <summary>The larger of each rate of this price and <paramref name="floor"/>.</summary>
    public NodePrice AtLeast(NodePrice floor) => new(
        Math.Max(PerComputePoint, floor.PerComputePoint),
        Math.Max(PerGiBMemory, floor.PerGiBMemory),
        Math.Max(PerGiBStorage, floor.PerGiBStorage),
        Math.Max(PerGpu, floor.PerGpu));

    internal static long CeilDiv(long a, long b) => (a + b - 1) / b;
}

/// <summary>
/// Everything the scheduler knows about one node, as the registry (or a host) reports it. Upserting a
/// snapshot replaces the node's attributes and capacity; its reservations are kept.
/// </summary>
public sealed record NodeSnapshot
{
    /// <summary>The node's identity.</summary>
    public required NodeId Id { get; init; }

    /// <summary>Total capacity: compute points, memory, storage, GPUs and the GPU model (null when it has none or it is unknown).</summary>
    public required Resources Capacity { get; init; }

    /// <summary>The region, e.g. <c>eu-west</c> (see <see cref="Labels.Region"/>).</summary>
    public required string Region { get; init; }

    /// <summary>The node's tags, e.g. <c>ssd</c> (see <see cref="Labels.Tag"/>); at most 64.</summary>
    public IReadOnlyCollection<string> Tags { get; init; } = [];

    /// <summary>The CPU architecture.</summary>
    public CpuArchitecture Architecture { get; init; } = CpuArchitecture.X86_64;

    /// <summary>The operator's hourly prices (raised to the platform floor when placing).</summary>
    public NodePrice Price { get; init; }

    /// <summary>30-day uptime in basis points: 10,000 is 100 %. Also the node's reputation.</summary>
    public int UptimeBasisPoints { get; init; } = 10_000;

    /// <summary>True when the node has a public IP; false when it is reachable only through a relay (CGNAT).</summary>
    public bool HasPublicIp { get; init; }

    /// <summary>The highest bandwidth tier the node's uplink can honour.</summary>
    public BandwidthTier MaxBandwidthTier { get; init; } = BandwidthTier.Unmetered;

    /// <summary>False while the node is offline: it then receives no work.</summary>
    public bool IsOnline { get; init; } = true;
}

/// <summary>An amount of each schedulable resource; CPU in twelfths of a node compute point (see <see cref="QualityTiers"/>).</summary>
/// <param name="CpuTwelfths">CPU in twelfths of a node compute point.</param>
/// <param name="MemoryMiB">Memory in MiB.</param>
/// <param name="StorageGiB">Storage in GiB.</param>
/// <param name="Gpus">GPUs.</param>
public readonly record struct ResourceAmounts(long CpuTwelfths, long MemoryMiB, long StorageGiB, int Gpus)
{
    /// <summary>Adds two amounts.</summary>
    public static ResourceAmounts operator +(ResourceAmounts a, ResourceAmounts b) =>
        new(a.CpuTwelfths + b.CpuTwelfths, a.MemoryMiB + b.MemoryMiB, a.StorageGiB + b.StorageGiB, a.Gpus + b.Gpus);

    /// <summary>Subtracts two amounts.</summary>
    public static ResourceAmounts operator -(ResourceAmounts a, ResourceAmounts b) =>
        new(a.CpuTwelfths - b.CpuTwelfths, a.MemoryMiB - b.MemoryMiB, a.StorageGiB - b.StorageGiB, a.Gpus - b.Gpus);

    /// <summary>Adds two amounts.</summary>
    public static ResourceAmounts Add(ResourceAmounts left, ResourceAmounts right) => left + right;

    /// <summary>Subtracts two amounts.</summary>
    public static ResourceAmounts Subtract(ResourceAmounts left, ResourceAmounts right) => left - right;

    /// <summary>What a VM consumes on a node: its points times its tier's twelfths per point, memory, storage, GPUs.</summary>
    public static ResourceAmounts Of(Resources resources, QualityTier tier) => new(
        (long)resources.ComputePoints * QualityTiers.TwelfthsPerPoint(tier), resources.MemoryMiB, resources.StorageGiB, resources.Gpus);
}

/// <summary>
/// A node's accounting: <c>Free + Held + Allocated == Capacity</c> for every resource, always. Free can be
/// negative only after the node's capacity shrank below what is already placed on it.
/// </summary>
/// <param name="Node">The node.</param>
/// <param name="IsOnline">Whether the node receives work.</param>
/// <param name="Capacity">Total capacity.</param>
/// <param name="Free">Capacity neither held nor allocated.</param>
/// <param name="Held">Capacity reserved by holds that are not yet committed.</param>
/// <param name="Allocated">Capacity of committed placements.</param>
/// <param name="Reservations">Number of holds and placements on the node.</param>
public readonly record struct NodeUsage(
    NodeId Node, bool IsOnline, ResourceAmounts Capacity, ResourceAmounts Free, ResourceAmounts Held, ResourceAmounts Allocated, int Reservations);

/// <summary>Where a reservation is in its two phases.</summary>
public enum ReservationState
{
    /// <summary>Unknown, released or expired: holds nothing.</summary>
    None = 0,

    /// <summary>Held until it is committed, released or expires.</summary>
    Held = 1,

    /// <summary>Committed: allocated until it is released.</summary>
    Allocated = 2,
}

/// <summary>A hold or placement of one VM on one node, as listed by <see cref="NodeInventory.GetReservations"/>.</summary>
/// <param name="Id">The reservation.</param>
/// <param name="Vm">The VM.</param>
/// <param name="Node">The node.</param>
/// <param name="State">Held or allocated.</param>
/// <param name="Amounts">What it consumes on the node.</param>
/// <param name="ExpiresAt">When a hold expires; null once allocated.</param>
public readonly record struct ReservationInfo(ReservationId Id, VmId Vm, NodeId Node, ReservationState State, ResourceAmounts Amounts, DateTimeOffset? ExpiresAt);

/// <summary>A handle on a hold or placement; <c>default</c> is no reservation.</summary>
/// <param name="Value">The slot (low 32 bits) and its generation (high 32 bits), so a stale handle never matches a new reservation.</param>
public readonly record struct ReservationId(long Value)
{
    /// <summary>True for <c>default(ReservationId)</c>.</summary>
    public bool IsEmpty => Value == 0;

    internal int Slot => (int)(Value & 0xFFFF_FFFF);

    internal int Generation => (int)(Value >>> 32);

    internal static ReservationId From(int slot, int generation) => new(((long)generation << 32) | (uint)slot);

    /// <inheritdoc />
    public override string ToString() => Value.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
}
