using DeCloud.Core.Model;
using DeCloud.Core.Registry;

namespace DeCloud.Core.Lifecycle;

/// <summary>What <see cref="VmStateReconciler"/> did with one node's reports.</summary>
/// <param name="Applied">Transitions stored (the report moved the VM along the table).</param>
/// <param name="Unchanged">Reports that matched the stored state.</param>
/// <param name="Ignored">Reports the table does not allow from the stored state (e.g. Running while Deleting), left alone.</param>
/// <param name="Unknown">VMs the node reports that the control plane does not place there (orphans for the host to clean up).</param>
public sealed record VmReconcileResult(IReadOnlyList<VmTransitionResult> Applied, int Unchanged, IReadOnlyList<VmStatusReport> Ignored, IReadOnlyList<VmId> Unknown);

/// <summary>
/// Feeds what nodes observe into the state machine: VM states reported in heartbeats, and nodes going
/// offline. Every change still goes through <see cref="VmLifecycle"/> and its table; a report the table
/// does not allow is ignored, never forced.
/// </summary>
public sealed class VmStateReconciler
{
    private static readonly VmState[] LiveStates =
        [VmState.Provisioning, VmState.Starting, VmState.Running, VmState.Stopping, VmState.Stopped];

    private readonly VmLifecycle _lifecycle;

    /// <summary>Creates a reconciler over <paramref name="lifecycle"/>.</summary>
    public VmStateReconciler(VmLifecycle lifecycle)
    {
        ArgumentNullException.ThrowIfNull(lifecycle);
        _lifecycle = lifecycle;
    }

    /// <summary>
    /// Applies the VM states a node reported (call it after <see cref="NodeRegistry.RecordHeartbeatAsync"/>).
    /// A VM the node reports but that is placed elsewhere or unknown is returned in <see cref="VmReconcileResult.Unknown"/>.
    /// </summary>
    public async Task<VmReconcileResult> ApplyHeartbeatAsync(NodeHeartbeat heartbeat, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(heartbeat);
        heartbeat.Validate();
        var applied = new List<VmTransitionResult>();
        var ignored = new List<VmStatusReport>();
        var unknown = new List<VmId>();
        var unchanged = 0;
        foreach (var report in heartbeat.Vms ?? [])
        {
            var vm = await _lifecycle.GetAsync(report.VmId, cancellationToken).ConfigureAwait(false);
            if (vm is null || vm.Node != heartbeat.NodeId)
            {
                unknown.Add(report.VmId);
            }
            else if (vm.State == report.State)
            {
                unchanged++;
            }
            else if (VmTransitionTable.IsAllowed(vm.State, report.State) && report.State is not (VmState.Scheduled or VmState.Migrating or VmState.Pending))
            {
                try
                {
                    applied.Add(await _lifecycle.TransitionAsync(report.VmId, report.State, VmTransitionCause.Heartbeat, "reported by the node", cancellationToken: cancellationToken).ConfigureAwait(false));
                }
                catch (VmTransitionException)
                {
                    ignored.Add(report); // the VM moved concurrently and the report no longer applies
                }
            }
            else
            {
                ignored.Add(report);
            }
        }

        return new VmReconcileResult(applied, unchanged, ignored, unknown);
    }

    /// <summary>
    /// Marks the live VMs of a node that went offline <see cref="VmState.Unreachable"/> (cause
    /// <see cref="VmTransitionCause.HealthCheck"/>); their next heartbeat report moves them back.
    /// Returns the transitions stored.
    /// </summary>
    public async Task<IReadOnlyList<VmTransitionResult>> MarkNodeUnreachableAsync(NodeId nodeId, CancellationToken cancellationToken = default)
    {
        if (nodeId.IsEmpty)
        {
            throw Validate.Fail("nodeId", "must not be empty.");
        }

        var results = new List<VmTransitionResult>();
        foreach (var vm in await _lifecycle.Store.ListAsync(node: nodeId, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (Array.IndexOf(LiveStates, vm.State) < 0)
            {
                continue;
            }

            try
            {
                results.Add(await _lifecycle.TransitionAsync(vm.Id, VmState.Unreachable, VmTransitionCause.HealthCheck, "node offline", cancellationToken: cancellationToken).ConfigureAwait(false));
            }
            catch (VmTransitionException)
            {
                // Moved concurrently to a state that cannot become Unreachable (e.g. Deleting): leave it.
            }
        }

        return results;
    }
}
