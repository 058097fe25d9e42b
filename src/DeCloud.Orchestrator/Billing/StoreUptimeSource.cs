using DeCloud.Billing.Metering;
using DeCloud.Core.Model;
using DeCloud.Orchestrator.Storage;

namespace DeCloud.Orchestrator.Billing;

/// <summary>
/// Billing's view of node uptime (featured nodes, SLA credits), measured from the online intervals the
/// orchestrator records: a node is up from registration or its first heartbeat after being offline until its last
/// heartbeat before it was marked offline (stream ended, silent for <c>OfflineAfter</c>, or an orchestrator restart).
/// </summary>
internal sealed class StoreUptimeSource(OrchestratorStore store) : INodeUptimeSource
{
    /// <inheritdoc />
    public decimal? GetUptime(NodeId node, DateTimeOffset from, DateTimeOffset to) => store.GetUptime(node, from, to);
}
