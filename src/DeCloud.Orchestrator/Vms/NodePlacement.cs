using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;
using DeCloud.Orchestrator.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Orchestrator.Vms;

/// <summary>
/// The orchestrator's view of the fleet for placement: a Core <see cref="NodeInventory"/> kept in step with
/// the node registry by Core's <see cref="NodeInventorySync"/>, and a <see cref="VmScheduler"/>
/// over it. Every placement rule (tiers, filters, explanations) lives in Core; this class only maps records
/// and remembers which reservation belongs to which VM so a delete or a failed create releases it.
/// </summary>
internal sealed class NodePlacement
{
    private readonly Lock _gate = new();
    private readonly Dictionary<VmId, ReservationId> _reservations = [];
    private readonly ILogger _logger;

    public NodePlacement(TimeProvider time, ILoggerFactory? loggerFactory = null)
    {
        Inventory = new NodeInventory(time);
        Scheduler = new VmScheduler(Inventory, new SchedulerOptions(), loggerFactory: loggerFactory);
        Sync = new NodeInventorySync(Inventory);
        _logger = (ILogger?)loggerFactory?.CreateLogger<NodePlacement>() ?? NullLogger.Instance;
    }

    /// <summary>The nodes placement sees.</summary>
    public NodeInventory Inventory { get; }

    /// <summary>Core's scheduler over <see cref="Inventory"/>.</summary>
    public VmScheduler Scheduler { get; }

    /// <summary>Keeps <see cref="Inventory"/> in step with the node registry (subscribed as its observer).</summary>
    public NodeInventorySync Sync { get; }

    /// <summary>Rebuilds the inventory from the registry's nodes and the VMs that still hold resources (called once, at start).</summary>
    public void Load(IReadOnlyList<Core.Registry.NodeRecord> nodes, IEnumerable<VmRecord> liveVms)
    {
        foreach (var n in nodes)
        {
            try
            {
                // Online while allocations are restored (the scheduler never places on offline nodes), then as stored.
                Inventory.Upsert(NodeInventorySync.ToSnapshot(n) with { IsOnline = true });
            }
            catch (DeCloudValidationException ex)
            {
                // The registry validated these fields already; a stored node that no longer passes is left unplaceable.
                Log.NodeNotPlaceable(_logger, n.Id.Value, ex.Message);
            }
        }

        foreach (var vm in liveVms)
        {
            if (!Inventory.Contains(vm.NodeId))
            {
                continue;
            }

            CommitStored(vm);
        }

        foreach (var n in nodes)
        {
            if (!n.IsOnline && Inventory.Contains(n.Id))
            {
                Inventory.SetOnline(n.Id, false);
            }
        }
    }

    /// <summary>Holds room for a VM; the caller commits once the VM is stored, or releases.</summary>
    /// <exception cref="DeCloudValidationException">The request names a node the inventory does not know.</exception>
    public PlacementResult Hold(VmId vm, VmRequest request) =>
        Scheduler.Place(RequestFor(vm, request.Resources, request.QualityTier, request.BandwidthTier, request.TargetNode), PlacementMode.Hold);

    /// <summary>Turns a hold into an allocation owned by <paramref name="vm"/> (already stored on its node).</summary>
    public void Commit(VmRecord vm, ReservationId reservation)
    {
        if (Scheduler.Commit(reservation) == ReservationState.Allocated)
        {
            Remember(vm.Id, reservation);
            return;
        }

        // The hold expired while the VM was being stored: count the stored VM on its node directly.
        CommitStored(vm);
    }

    /// <summary>Gives back a hold that was never committed.</summary>
    public void Abandon(ReservationId reservation) => Scheduler.Release(reservation);

    /// <summary>Releases what <paramref name="vm"/> holds (deleted or failed). Idempotent.</summary>
    public void Release(VmId vm)
    {
        ReservationId reservation;
        lock (_gate)
        {
            if (!_reservations.Remove(vm, out reservation))
            {
                return;
            }
        }

        Scheduler.Release(reservation);
    }

    /// <summary>Counts a stored VM on its own node (at start, or after its hold expired).</summary>
    private void CommitStored(VmRecord vm)
    {
        var result = Scheduler.Place(RequestFor(vm.Id, vm.Resources, vm.QualityTier, vm.BandwidthTier, vm.NodeId), PlacementMode.Commit);
        if (result.Succeeded)
        {
            Remember(vm.Id, result.Reservation);
        }
        else
        {
            // The node shrank below what its VMs hold: the VM is kept, it just is not counted.
            Log.AllocationNotRestored(_logger, vm.Id.ToString(), vm.NodeId.Value, result.Refusal!.Summary);
        }
    }

    private void Remember(VmId vm, ReservationId reservation)
    {
        lock (_gate)
        {
            _reservations[vm] = reservation;
        }
    }

    private static PlacementRequest RequestFor(VmId vm, Resources resources, QualityTier quality, BandwidthTier bandwidth, NodeId? target) => new()
    {
        VmId = vm,
        Resources = resources,
        QualityTier = quality,
        BandwidthTier = bandwidth,
        TargetNode = target,
    };
}
