using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>
/// A hard filter a third party adds to the scheduler. It runs after the built-in filters, cheapest
/// <see cref="Cost"/> first, on the few candidates the built-in indexes leave, and on every node when a
/// refusal is explained. It is called under the scheduler's lock: keep it fast and free of I/O.
/// </summary>
public interface IPlacementFilter
{
    /// <summary>A short name used in refusal explanations, e.g. <c>maintenance-window</c>.</summary>
    string Name { get; }

    /// <summary>A relative cost hint; built-in filters cost 0-30. Cheaper filters run first.</summary>
    int Cost { get; }

    /// <summary>True when <paramref name="node"/> may host <paramref name="request"/>.</summary>
    bool Accepts(in NodeView node, PlacementRequest request);
}

/// <summary>
/// A soft preference a third party adds: among the candidates that pass every filter, the highest total
/// of <c>Weight * Score</c> wins.
/// </summary>
public interface IPlacementScorer
{
    /// <summary>A short name.</summary>
    string Name { get; }

    /// <summary>The weight of this scorer against the built-in ones (see <see cref="SchedulerOptions"/>).</summary>
    double Weight { get; }

    /// <summary>A score in 0..1 (higher is better) of placing <paramref name="request"/> on <paramref name="node"/>.</summary>
    double Score(in NodeView node, PlacementRequest request);
}

/// <summary>A read-only view of one node's current state, handed to filters and scorers.</summary>
public readonly struct NodeView
{
    private readonly NodeInventory _inventory;
    private readonly int _slot;

    internal NodeView(NodeInventory inventory, int slot)
    {
        _inventory = inventory;
        _slot = slot;
    }

    /// <summary>The node.</summary>
    public NodeId Id => _inventory.Ids[_slot];

    /// <summary>The region.</summary>
    public string Region => _inventory.RegionName(_slot);

    /// <summary>The architecture.</summary>
    public CpuArchitecture Architecture => NodeAttributes.Architecture(_inventory.Attr[_slot]);

    /// <summary>The GPU model, or null.</summary>
    public string? GpuModel => _inventory.GpuModelName(_slot);

    /// <summary>Whether the node is online.</summary>
    public bool IsOnline => NodeAttributes.IsOnline(_inventory.Attr[_slot]);

    /// <summary>Whether the node has a public IP.</summary>
    public bool HasPublicIp => NodeAttributes.HasPublicIp(_inventory.Attr[_slot]);

    /// <summary>30-day uptime in basis points.</summary>
    public int UptimeBasisPoints => NodeAttributes.Uptime(_inventory.Attr[_slot]);

    /// <summary>The highest bandwidth tier offered.</summary>
    public BandwidthTier MaxBandwidthTier => NodeAttributes.MaxBandwidth(_inventory.Attr[_slot]);

    /// <summary>The operator's prices.</summary>
    public NodePrice Price => _inventory.Prices[_slot];

    /// <summary>Total capacity.</summary>
    public ResourceAmounts Capacity => _inventory.CapacityOf(_slot);

    /// <summary>Capacity neither held nor allocated.</summary>
    public ResourceAmounts Free => _inventory.FreeOf(_slot);

    /// <summary>True when the node carries <paramref name="tag"/> (case-insensitive).</summary>
    public bool HasTag(string tag) => _inventory.HasTag(_slot, tag);
}
