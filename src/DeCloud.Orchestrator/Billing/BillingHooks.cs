using DeCloud.Core.Model;
using DeCloud.Orchestrator.Storage;
using DeCloud.Protocol.V1;

namespace DeCloud.Orchestrator.Billing;

/// <summary>
/// Where the VM path tells billing about a VM. Called before the VM row is stored, so a failure leaves
/// no unbilled VM behind (an orphan lease without usage is never charged).
/// </summary>
internal interface IVmBillingHook
{
    /// <summary>Registers the VM's lease priced at the platform's default rates. Idempotent.</summary>
    void OnVmCreated(VmRecord vm);

    /// <summary>
    /// Re-prices the VM with its node's floor-enforced prices and freezes that rate (registering it first
    /// if needed): later price changes do not touch it. Idempotent for the same node.
    /// </summary>
    void OnVmPlaced(VmRecord vm);
}

/// <summary>Where heartbeats hand their usage report to billing.</summary>
internal interface IUsageSink
{
    /// <summary>
    /// Takes the usage report of a heartbeat from <paramref name="node"/>. Records billing refuses (unknown,
    /// closed or foreign VMs, bad counters) are dropped and logged; returns a problem only when the report
    /// itself is malformed (it then counts as a bad agent message).
    /// </summary>
    string? OnHeartbeat(NodeId node, Heartbeat heartbeat);
}
