using DeCloud.Core.Model;

namespace DeCloud.Core.Lifecycle;

/// <summary>
/// Storage of VMs, their transition history and the effect outbox. Implementations must write a
/// transition, the VM's new state and its effects atomically (one transaction), and must make
/// <see cref="CompleteEffectAsync"/> idempotent. <see cref="SqliteVmStore"/> is the embedded default.
/// </summary>
public interface IVmStore
{
    /// <summary>Stores a new VM with its creation transition and effects; false when the id already exists (nothing stored).</summary>
    Task<bool> InsertAsync(VmRecord vm, VmTransition creation, IReadOnlyList<string> effects, DateTimeOffset dueAt, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stores <paramref name="updated"/> (whose version is <paramref name="expectedVersion"/> + 1), the
    /// transition and its effects in one transaction, only if the stored version still is
    /// <paramref name="expectedVersion"/>; false (nothing stored) otherwise.
    /// </summary>
    Task<bool> ApplyTransitionAsync(VmRecord updated, long expectedVersion, VmTransition transition, IReadOnlyList<string> effects, DateTimeOffset dueAt, CancellationToken cancellationToken = default);

    /// <summary>The VM, or null.</summary>
    Task<VmRecord?> GetAsync(VmId id, CancellationToken cancellationToken = default);

    /// <summary>VMs, optionally only those in <paramref name="state"/> and/or on <paramref name="node"/>.</summary>
    Task<IReadOnlyList<VmRecord>> ListAsync(VmState? state = null, NodeId? node = null, CancellationToken cancellationToken = default);

    /// <summary>A VM's transitions in order.</summary>
    Task<IReadOnlyList<VmTransition>> GetHistoryAsync(VmId id, CancellationToken cancellationToken = default);

    /// <summary>Pending effects due at or before <paramref name="now"/>, oldest first, at most <paramref name="max"/>.</summary>
    Task<IReadOnlyList<VmEffectEntry>> GetDueEffectsAsync(DateTimeOffset now, int max, CancellationToken cancellationToken = default);

    /// <summary>The earliest due time of any pending effect, or null when none is pending.</summary>
    Task<DateTimeOffset?> GetNextDueAsync(CancellationToken cancellationToken = default);

    /// <summary>Effects of one VM (any status), in order.</summary>
    Task<IReadOnlyList<VmEffectEntry>> GetEffectsAsync(VmId id, CancellationToken cancellationToken = default);

    /// <summary>Marks a pending effect done; false (and no change) when it is not pending any more.</summary>
    Task<bool> CompleteEffectAsync(string effectId, int attempts, DateTimeOffset at, CancellationToken cancellationToken = default);

    /// <summary>Records a failed attempt: retried at <paramref name="nextAttemptAt"/>, or given up when it is null.</summary>
    Task FailEffectAsync(string effectId, int attempts, DateTimeOffset? nextAttemptAt, string error, CancellationToken cancellationToken = default);

    /// <summary>Puts a failed effect back in the queue (attempts reset); false when it is not failed.</summary>
    Task<bool> RequeueEffectAsync(string effectId, DateTimeOffset dueAt, CancellationToken cancellationToken = default);
}
