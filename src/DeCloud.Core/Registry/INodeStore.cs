using DeCloud.Core.Model;

namespace DeCloud.Core.Registry;

/// <summary>Failed heartbeats attributed to one UTC day.</summary>
/// <param name="Day">Days since 1970-01-01 (UTC).</param>
/// <param name="Count">Failed heartbeats that day.</param>
public readonly record struct FailedHeartbeats(long Day, int Count);

/// <summary>A node's live status row: written on every heartbeat and health check.</summary>
/// <param name="NodeId">The node.</param>
/// <param name="LastSeenAt">Last heartbeat (or registration).</param>
/// <param name="Status">Online or offline.</param>
/// <param name="MissedCounted">Missed heartbeats since <paramref name="LastSeenAt"/> already added to reputation (so none is counted twice).</param>
/// <param name="Used">Reported resource use.</param>
/// <param name="Vms">Reported VM states.</param>
/// <param name="NewlyFailed">Failed heartbeats to add to the per-day reputation in the same transaction.</param>
public sealed record NodeStatusUpdate(
    NodeId NodeId, DateTimeOffset LastSeenAt, NodeStatus Status, long MissedCounted, Resources Used,
    IReadOnlyList<VmStatusReport> Vms, IReadOnlyList<FailedHeartbeats> NewlyFailed);

/// <summary>Everything stored about one node, as loaded at start.</summary>
/// <param name="Registration">The registration.</param>
/// <param name="RegisteredAt">First registration.</param>
/// <param name="UpdatedAt">Last re-registration.</param>
/// <param name="Status">The status row (its <see cref="NodeStatusUpdate.NewlyFailed"/> is empty).</param>
/// <param name="FailedByDay">Failed heartbeats per day still kept.</param>
/// <param name="VmsHosted">Lifetime counter.</param>
/// <param name="VmsCompletedCleanly">Lifetime counter.</param>
public sealed record StoredNode(
    NodeRegistration Registration, DateTimeOffset RegisteredAt, DateTimeOffset UpdatedAt, NodeStatusUpdate Status,
    IReadOnlyList<FailedHeartbeats> FailedByDay, long VmsHosted, long VmsCompletedCleanly);

/// <summary>A node's lifetime counter.</summary>
public enum NodeCounter
{
    /// <summary>VMs that ran on the node.</summary>
    VmsHosted = 0,

    /// <summary>VMs that ended cleanly on the node.</summary>
    VmsCompletedCleanly = 1,
}

/// <summary>
/// Storage of nodes, their status, reputation and counters. <see cref="SqliteNodeStore"/> is the
/// embedded default; another engine implements the same contract: each call is atomic.
/// </summary>
public interface INodeStore
{
    /// <summary>Every node, for the registry's in-memory view at start.</summary>
    Task<IReadOnlyList<StoredNode>> LoadAllAsync(CancellationToken cancellationToken = default);

    /// <summary>Inserts or updates a registration; on insert also writes <paramref name="initialStatus"/>.</summary>
    Task SaveRegistrationAsync(NodeRegistration registration, DateTimeOffset registeredAt, DateTimeOffset updatedAt, NodeStatusUpdate initialStatus, CancellationToken cancellationToken = default);

    /// <summary>Writes status rows and their failed-heartbeat increments in one transaction; rows of removed nodes are skipped.</summary>
    Task SaveStatusBatchAsync(IReadOnlyList<NodeStatusUpdate> updates, CancellationToken cancellationToken = default);

    /// <summary>Removes a node and everything stored about it; false when it did not exist.</summary>
    Task<bool> RemoveAsync(NodeId nodeId, CancellationToken cancellationToken = default);

    /// <summary>Deletes failed-heartbeat entries of days before <paramref name="firstKeptDay"/>; returns how many rows went.</summary>
    Task<int> PruneFailedHeartbeatsAsync(long firstKeptDay, CancellationToken cancellationToken = default);

    /// <summary>Adds one to a node's counter unless <paramref name="idempotencyKey"/> was counted before; true when it counted now.</summary>
    Task<bool> IncrementCounterAsync(NodeId nodeId, NodeCounter counter, string idempotencyKey, CancellationToken cancellationToken = default);
}
