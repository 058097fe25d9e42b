using DeCloud.Core.Model;
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
/// Carries out VM operations: place, persist the state change together with the agent command in one
/// transaction, then push the command to the node's stream (or leave it pending until it reconnects).
/// </summary>
internal sealed class VmService(
    OrchestratorStore store,
    AgentSessions sessions,
    OrchestratorMetrics metrics,
    IOptions<OrchestratorOptions> options,
    TimeProvider time,
    ILogger<VmService> logger)
{
    private readonly Lock _placementGate = new();

    public (VmOutcome Outcome, VmRecord? Vm, string? Detail) Create(WalletAddress owner, VmRequest request)
    {
        Command command;
        VmRecord vm;
        // Placement reads free capacity and writes the VM: serialize so two requests never take the same room.
        lock (_placementGate)
        {
            var (node, why) = Place(request);
            if (node is null)
            {
                return (request.TargetNode is null ? VmOutcome.NoCapacity : VmOutcome.NodeUnavailable, null, why);
            }

            var now = time.GetUtcNow();
            vm = new VmRecord(VmId.New(), owner, request.Name, node.Id, request.Resources, request.QualityTier, request.BandwidthTier,
                VmStates.Provisioning, "unknown", null, new Dictionary<string, bool>(), now, now);
            var spec = BandwidthTierCatalog.Default[request.BandwidthTier];
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

        metrics.VmsCreated.Add(1);
        Log.VmPlaced(logger, vm.Id.ToString(), vm.NodeId.Value);
        Dispatch(vm.NodeId, command);
        return (VmOutcome.Ok, vm, null);
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

    private (NodeRecord? Node, string? Why) Place(VmRequest request)
    {
        var nodes = store.ListNodes();
        var allocations = store.Allocations();
        var needTwelfths = (long)request.Resources.ComputePoints * QualityTiers.TwelfthsPerPoint(request.QualityTier);
        NodeRecord? best = null;
        long bestFree = -1;
        foreach (var n in nodes)
        {
            if (request.TargetNode is { } target && n.Id != target)
            {
                continue;
            }

            if (!n.Online)
            {
                continue;
            }

            allocations.TryGetValue(n.Id.Value, out var a);

            var freeTwelfths = (long)n.Capacity.ComputePoints * QualityTiers.TwelfthsPerNodePoint - a.CpuTwelfths;
            if (freeTwelfths < needTwelfths
                || n.Capacity.MemoryMiB - a.MemoryMiB < request.Resources.MemoryMiB
                || n.Capacity.StorageGiB - a.StorageGiB < request.Resources.StorageGiB
                || n.Capacity.Gpus - a.Gpus < request.Resources.Gpus)
            {
                continue;
            }

            if (freeTwelfths > bestFree)
            {
                best = n;
                bestFree = freeTwelfths;
            }
        }

        if (best is not null)
        {
            return (best, null);
        }

        if (request.TargetNode is { } t)
        {
            var node = nodes.FirstOrDefault(n => n.Id == t);
            return (null, node is null ? $"node {t} is not registered." : !node.Online ? $"node {t} is offline." : $"node {t} has no room for {Describe(request)}.");
        }

        return (null, $"no online node has room for {Describe(request)}.");
    }

    private void Dispatch(NodeId node, Command command)
    {
        if (sessions.TrySend(node, new OrchestratorMessage { Command = command }))
        {
            metrics.CommandsSent.Add(1);
        }
    }

    private static string Describe(VmRequest r) =>
        $"{r.Resources.ComputePoints} points ({r.QualityTier}), {r.Resources.MemoryMiB} MiB, {r.Resources.StorageGiB} GiB";

    private static Command NewCommand(ulong seq, DateTimeOffset now, Action<Command> fill)
    {
        var c = new Command { CommandId = Guid.NewGuid().ToString("N"), Sequence = seq, IssuedAtUnixMs = now.ToUnixTimeMilliseconds() };
        fill(c);
        return c;
    }
}
