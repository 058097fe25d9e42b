using DeCloud.Core.Model;

namespace DeCloud.Core.Registry;

/// <summary>Whether the health monitor currently hears from a node.</summary>
public enum NodeStatus
{
    /// <summary>Heartbeats arrive.</summary>
    Online = 0,

    /// <summary>No heartbeat for longer than <see cref="NodeRegistryOptions.OfflineAfter"/>.</summary>
    Offline = 1,
}

/// <summary>A registered node as the registry sees it now (an immutable snapshot).</summary>
/// <param name="Registration">What the agent registered (normalized).</param>
/// <param name="Capacity">Total resources: compute points from the benchmark, memory, storage, GPUs.</param>
/// <param name="Status">Online or offline.</param>
/// <param name="RegisteredAt">First registration.</param>
/// <param name="UpdatedAt">Last (re-)registration.</param>
/// <param name="LastSeenAt">Last heartbeat (the registration time before the first one).</param>
/// <param name="Used">Resources in use per the last heartbeat.</param>
/// <param name="Vms">VM states per the last heartbeat.</param>
/// <param name="Uptime">Rolling uptime over the reputation window, 0..1.</param>
/// <param name="FailedHeartbeats">Failed heartbeats in the reputation window.</param>
/// <param name="VmsHosted">Lifetime count of VMs that ran on the node.</param>
/// <param name="VmsCompletedCleanly">Lifetime count of VMs that ended cleanly on the node.</param>
public sealed record NodeRecord(
    NodeRegistration Registration,
    Resources Capacity,
    NodeStatus Status,
    DateTimeOffset RegisteredAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset LastSeenAt,
    Resources Used,
    IReadOnlyList<VmStatusReport> Vms,
    double Uptime,
    long FailedHeartbeats,
    long VmsHosted,
    long VmsCompletedCleanly)
{
    /// <summary>The node's id.</summary>
    public NodeId Id => Registration.NodeId;

    /// <summary>True when <see cref="Status"/> is <see cref="NodeStatus.Online"/>.</summary>
    public bool IsOnline => Status == NodeStatus.Online;

    /// <summary>Capacity minus reported use (never negative).</summary>
    public Resources Free => new(
        Math.Max(0, Capacity.ComputePoints - Used.ComputePoints),
        Math.Max(0, Capacity.MemoryMiB - Used.MemoryMiB),
        Math.Max(0, Capacity.StorageGiB - Used.StorageGiB),
        Math.Max(0, Capacity.Gpus - Used.Gpus),
        Capacity.GpuModel);
}

/// <summary>What changed in the registry.</summary>
public enum NodeChangeKind
{
    /// <summary>A new node registered.</summary>
    Registered = 0,

    /// <summary>A known node re-registered (capacity, pricing, labels may have changed).</summary>
    Updated = 1,

    /// <summary>The health monitor marked the node offline.</summary>
    Offline = 2,

    /// <summary>A heartbeat arrived from an offline node.</summary>
    Online = 3,

    /// <summary>The node was removed from the registry.</summary>
    Removed = 4,
}

/// <summary>One change, delivered after it was stored.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="NodeId">The node.</param>
/// <param name="Node">The node after the change (its last state for <see cref="NodeChangeKind.Removed"/>).</param>
public sealed record NodeChange(NodeChangeKind Kind, NodeId NodeId, NodeRecord Node);

/// <summary>
/// Receives registry changes (e.g. a scheduler keeping an in-memory inventory in sync). Called
/// synchronously after the change was stored, on the thread that made it; keep it fast and do not
/// call back into the registry. An exception is logged and does not affect the registry or other observers.
/// </summary>
public interface INodeRegistryObserver
{
    /// <summary>Called once per change.</summary>
    void OnNodeChanged(NodeChange change);
}
