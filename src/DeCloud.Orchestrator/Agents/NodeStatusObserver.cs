using DeCloud.Core.Registry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Orchestrator.Agents;

/// <summary>
/// Hears the registry's health monitor: a node marked offline (no heartbeat for <c>OfflineAfter</c>) is counted and
/// its silent stream, if one is still open, is ended so the agent reconnects.
/// </summary>
internal sealed class NodeStatusObserver(
    AgentSessions sessions, OrchestratorMetrics metrics, IOptions<OrchestratorOptions> options, ILogger<NodeStatusObserver> logger) : INodeRegistryObserver
{
    public void OnNodeChanged(NodeChange change)
    {
        if (change.Kind != NodeChangeKind.Offline)
        {
            return;
        }

        metrics.NodesOffline.Add(1);
        Log.NodeOffline(logger, change.NodeId.Value, options.Value.OfflineAfter);
        sessions.End(change.NodeId);
    }
}
