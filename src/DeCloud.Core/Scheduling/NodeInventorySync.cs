using DeCloud.Core.Model;
using DeCloud.Core.Registry;

namespace DeCloud.Core.Scheduling;

/// <summary>
/// Keeps a <see cref="NodeInventory"/> in step with a <see cref="NodeRegistry"/>: registrations and updates
/// become <see cref="NodeInventory.Upsert"/> (holds and allocations are kept), the health monitor's offline and
/// online become <see cref="NodeInventory.SetOnline"/>, removals <see cref="NodeInventory.Remove"/>. To mirror a
/// registry, subscribe it first, then <see cref="Load"/> <see cref="NodeRegistry.GetAllAsync"/>.
/// </summary>
public sealed class NodeInventorySync : INodeRegistryObserver
{
    private const decimal MicroUsdc = 1_000_000m;

    private readonly NodeInventory _inventory;

    /// <summary>Creates the feed for <paramref name="inventory"/>.</summary>
    public NodeInventorySync(NodeInventory inventory)
    {
        ArgumentNullException.ThrowIfNull(inventory);
        _inventory = inventory;
    }

    /// <summary>Adds or updates every node of <paramref name="nodes"/> (e.g. the registry's nodes at start).</summary>
    public void Load(IEnumerable<NodeRecord> nodes)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        foreach (var node in nodes)
        {
            _inventory.Upsert(ToSnapshot(node));
        }
    }

    /// <inheritdoc />
    public void OnNodeChanged(NodeChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        switch (change.Kind)
        {
            case NodeChangeKind.Registered or NodeChangeKind.Updated:
                _inventory.Upsert(ToSnapshot(change.Node));
                break;
            case NodeChangeKind.Online or NodeChangeKind.Offline:
                if (_inventory.Contains(change.NodeId))
                {
                    _inventory.SetOnline(change.NodeId, change.Kind == NodeChangeKind.Online);
                }
                else
                {
                    _inventory.Upsert(ToSnapshot(change.Node));
                }

                break;
            case NodeChangeKind.Removed:
                _inventory.Remove(change.NodeId);
                break;
            default:
                break;
        }
    }

    /// <summary>
    /// What the scheduler sees of a registered node: capacity from its benchmark, region, tags, architecture,
    /// public IP (not behind NAT), prices (USDC per hour to micro-USDC), uptime (to basis points) and online state.
    /// </summary>
    public static NodeSnapshot ToSnapshot(NodeRecord node)
    {
        ArgumentNullException.ThrowIfNull(node);
        var r = node.Registration;
        return new NodeSnapshot
        {
            Id = node.Id,
            Capacity = node.Capacity,
            Region = r.Region,
            Tags = r.Tags,
            Architecture = r.Architecture,
            HasPublicIp = r.Connectivity == NodeConnectivity.Public,
            Price = new NodePrice(Micro(r.Pricing.ComputePointHour), Micro(r.Pricing.MemoryGiBHour), Micro(r.Pricing.StorageGiBHour), Micro(r.Pricing.GpuHour)),
            UptimeBasisPoints = (int)Math.Clamp(Math.Round(node.Uptime * 10_000), 0, 10_000),
            IsOnline = node.IsOnline,
        };
    }

    private static long Micro(decimal usdcPerHour) => (long)Math.Round(usdcPerHour * MicroUsdc, MidpointRounding.AwayFromZero);
}
