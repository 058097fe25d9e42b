using DeCloud.Billing.Metering;
using DeCloud.Core.Model;
using DeCloud.Orchestrator.Storage;

namespace DeCloud.Orchestrator.Billing;

/// <summary>
/// Billing's view of node uptime (featured nodes, SLA credits): Core's reputation from the node registry, the share of
/// heartbeats that arrived over its rolling window (30 days by default, from registration on). The registry keeps one
/// window, so every span Billing asks about is answered with it.
/// </summary>
internal sealed class StoreUptimeSource(OrchestratorStore store) : INodeUptimeSource
{
    /// <inheritdoc />
    public decimal? GetUptime(NodeId node, DateTimeOffset from, DateTimeOffset to) => to > from ? store.GetUptime(node) : null;
}
