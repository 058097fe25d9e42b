using DeCloud.Billing.Metering;
using DeCloud.Core.Model;
using DeCloud.Orchestrator.Storage;
using Microsoft.Extensions.Logging;

namespace DeCloud.Orchestrator.Billing;

/// <summary>
/// Opens a VM's billing lease: at creation priced at the platform defaults, once placed re-priced with
/// the chosen node's prices (DeCloud.Billing's <see cref="UsageMeter.Place"/> fixes that rate). The node
/// operator earns; when the node is behind NAT and has a relay, the relay's operator gets the relay share.
/// </summary>
internal sealed class VmBilling(UsageMeter meter, OrchestratorStore store, ILogger<VmBilling> logger) : IVmBillingHook
{
    public void OnVmCreated(VmRecord vm)
    {
        ArgumentNullException.ThrowIfNull(vm);
        meter.RegisterVm(vm.Id, vm.Owner, vm.Resources, vm.QualityTier, vm.BandwidthTier);
    }

    public void OnVmPlaced(VmRecord vm)
    {
        ArgumentNullException.ThrowIfNull(vm);
        OnVmCreated(vm);
        var node = store.GetNode(vm.NodeId)
            ?? throw new InvalidOperationException($"VM {vm.Id} is placed on node {vm.NodeId}, which is not registered.");
        WalletAddress? relayOperator = node is { BehindNat: true, RelayNodeId: { } relayId }
            && NodeId.TryParse(relayId, null, out var rid) && store.GetNode(rid) is { } relay ? relay.Operator : null;
        var lease = meter.Place(vm.Id, vm.NodeId, node.Operator, relayOperator);
        Log.VmPriced(logger, vm.Id.ToString(), lease.HourlyRateUsdc, vm.NodeId.Value);
    }
}
