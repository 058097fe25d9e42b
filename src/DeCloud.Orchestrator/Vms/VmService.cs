using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;
using DeCloud.Orchestrator.Agents;
using DeCloud.Orchestrator.Storage;
using DeCloud.Protocol.V1;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Orchestrator.Vms;

/// <summary>What the user asked for when creating a VM.</summary>
internal sealed record VmRequest(string Name, Resources Resources, QualityTier QualityTier, BandwidthTier BandwidthTier, NodeId? TargetNode, string Image);

/// <summary>Why an operation on a VM was not carried out (mapped to HTTP problem details).</summary>
internal enum VmOutcome
{
    Ok,
    NotFound,
    Conflict,
    NoCapacity,
    NodeUnavailable,
}

/// <summary>
/// Carries out VM operations: place (Core's scheduler, via <see cref="NodePlacement"/>), persist the state change together with the agent command in one
/// transaction, then push the command to the node's stream (or leave it pending until it reconnects).
/// </summary>
internal sealed class VmService(
    OrchestratorStore store,
    NodePlacement placement,
    Billing.IVmBillingHook billing,
    AgentSessions sessions,
    OrchestratorMetrics metrics,
    IOptions<OrchestratorOptions> options,
    TimeProvider time,
    ILogger<VmService> logger)
{
    /// <summary>
    /// Places the VM through Core's scheduler (a hold), stores the VM row and its create command in one
    /// transaction, then commits the hold; a failed store releases it. A refusal carries the scheduler's explanation.
    /// </summary>
    public (VmOutcome Outcome, VmRecord? Vm, string? Detail, PlacementRefusal? Refusal) Create(WalletAddress owner, VmRequest request)
    {
        var id = VmId.New();
        PlacementResult placed;
        try
        {
            placed = placement.Hold(id, request);
        }
        catch (DeCloudValidationException ex) when (request.TargetNode is { } target)
        {
            // The only request field the API does not validate itself: a target node the fleet does not know.
            return (VmOutcome.NodeUnavailable, null, $"node {target} is not registered ({ex.Message}).", null);
        }

        if (!placed.Succeeded)
        {
            Log.PlacementRefused(logger, placed.Refusal!.Summary);
            return (request.TargetNode is null ? VmOutcome.NoCapacity : VmOutcome.NodeUnavailable, null, placed.Refusal.Summary, placed.Refusal);
        }

        var now = time.GetUtcNow();
        var vm = new VmRecord(id, owner, request.Name, placed.Node, request.Resources, request.QualityTier, request.BandwidthTier,
            VmStates.Provisioning, "unknown", null, new Dictionary<string, bool>(), now, now);
        var spec = BandwidthTierCatalog.Default[request.BandwidthTier];
        Command command;
        try
        {
            billing.OnVmPlaced(vm);
            command = store.CreateVm(vm, seq => NewCommand(seq, now, c => c.CreateVm = new CreateVm
            {
                VmId = vm.Id.ToString(),
                Name = vm.Name,
                Resources = new Capacity { ComputePoints = request.Resources.ComputePoints, MemoryMib = request.Resources.MemoryMiB, StorageGib = request.Resources.StorageGiB, Gpus = request.Resources.Gpus },
                QualityTier = request.QualityTier.ToString(),
                BandwidthTier = request.BandwidthTier.ToString(),
                BandwidthBytesPerSecond = spec.BytesPerSecond ?? 0,
                Image = request.Image,
                Start = true,
            }));
        }
        catch
        {
            placement.Abandon(placed.Reservation);
            throw;
        }

        placement.Commit(vm, placed.Reservation);
        metrics.VmsCreated.Add(1);
        Log.VmPlaced(logger, vm.Id.ToString(), vm.NodeId.Value);
        Dispatch(vm.NodeId, command);
        return (VmOutcome.Ok, vm, null, null);
    }

    public (VmOutcome Outcome, VmRecord? Vm) Start(WalletAddress owner, VmId id) =>
        Change(owner, id, [VmStates.Stopped], VmStates.Starting, c => c.StartVm = new StartVm { VmId = id.ToString() });

    public (VmOutcome Outcome, VmRecord? Vm) Stop(WalletAddress owner, VmId id) =>
        Change(owner, id, [VmStates.Running], VmStates.Stopping, c => c.StopVm = new StopVm { VmId = id.ToString() });

    public (VmOutcome Outcome, VmRecord? Vm) Delete(WalletAddress owner, VmId id) =>
        Change(owner, id, [VmStates.Running, VmStates.Stopped, VmStates.Provisioning, VmStates.Starting, VmStates.Stopping], VmStates.Deleting,
            c => c.DeleteVm = new DeleteVm { VmId = id.ToString() });

    public (VmOutcome Outcome, PortRecord? Port, string? Detail) OpenPort(WalletAddress owner, VmId id, int targetPort, string protocol)
    {
        var vm = store.GetVm(id);
        if (vm is null || vm.Owner != owner)
        {
            return (VmOutcome.NotFound, null, null);
        }

        if (vm.State is not (VmStates.Running or VmStates.Provisioning))
        {
            return (VmOutcome.Conflict, null, $"VM is {vm.State}; ports can be opened on a running VM.");
        }

        var o = options.Value;
        var now = time.GetUtcNow();
        var reserved = store.ReservePort(id, vm.NodeId, targetPort, protocol, o.PublicPortMin, o.PublicPortMax,
            (port, seq) => NewCommand(seq, now, c => c.AllocatePublicPort = new AllocatePublicPort
            {
                VmId = id.ToString(),
                PublicPort = port,
                TargetPort = targetPort,
                Protocol = protocol,
            }), now);
        if (reserved is null)
        {
            return (VmOutcome.NoCapacity, null, $"every public {protocol} port in {o.PublicPortMin}-{o.PublicPortMax} is taken.");
        }

        Dispatch(vm.NodeId, reserved.Value.Command);
        return (VmOutcome.Ok, reserved.Value.Port, null);
    }

    private (VmOutcome, VmRecord?) Change(WalletAddress owner, VmId id, string[] from, string to, Action<Command> fill)
    {
        var vm = store.GetVm(id);
        if (vm is null || vm.Owner != owner)
        {
            return (VmOutcome.NotFound, null);
        }

        var now = time.GetUtcNow();
        var command = store.TransitionWithCommand(id, vm.NodeId, from, to, seq => NewCommand(seq, now, fill), now);
        if (command is null)
        {
            return (VmOutcome.Conflict, vm);
        }

        Dispatch(vm.NodeId, command);
        return (VmOutcome.Ok, store.GetVm(id));
    }

    private void Dispatch(NodeId node, Command command)
    {
        if (sessions.TrySend(node, new OrchestratorMessage { Command = command }))
        {
            metrics.CommandsSent.Add(1);
        }
    }

    private static Command NewCommand(ulong seq, DateTimeOffset now, Action<Command> fill)
    {
        var c = new Command { CommandId = Guid.NewGuid().ToString("N"), Sequence = seq, IssuedAtUnixMs = now.ToUnixTimeMilliseconds() };
        fill(c);
        return c;
    }
}
