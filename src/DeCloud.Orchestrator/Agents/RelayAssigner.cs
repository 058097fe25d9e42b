using DeCloud.Core.Model;
using DeCloud.Orchestrator.Storage;
using DeCloud.Protocol.V1;
using Microsoft.Extensions.Logging;

namespace DeCloud.Orchestrator.Agents;

/// <summary>
/// Picks a relay for each node behind NAT: an online relay-capable public node, same region first,
/// then the one carrying the fewest NAT'd nodes, and tells the NAT'd node where to dial.
/// </summary>
internal sealed class RelayAssigner(OrchestratorStore store, AgentSessions sessions, ILogger<RelayAssigner> logger, Security.RelayTokens relayTokens)
{
    private readonly Lock _gate = new();

    /// <summary>Called after a node registered: a NAT'd node gets a relay; a new relay picks up NAT'd nodes without one.</summary>
    public void OnRegistered(NodeRecord node)
    {
        lock (_gate)
        {
            var nodes = store.ListNodes();
            if (node.BehindNat)
            {
                Assign(node, nodes);
            }
            else if (node.RelayCapable)
            {
                foreach (var n in nodes)
                {
                    // NAT'd nodes without a live relay, and those of this relay (it restarted and lost its grants).
                    if (n.BehindNat && n.Online && (n.RelayNodeId is null || n.RelayNodeId == node.Id.Value || !IsOnlineRelay(nodes, n.RelayNodeId)))
                    {
                        Assign(n, store.ListNodes());
                    }
                }
            }
        }
    }

    private void Assign(NodeRecord natted, IReadOnlyList<NodeRecord> nodes)
    {
        NodeRecord? best = null;
        var bestLoad = int.MaxValue;
        var bestSameRegion = false;
        foreach (var candidate in nodes)
        {
            if (!candidate.Online || !candidate.RelayCapable || candidate.BehindNat || candidate.Id == natted.Id || !sessions.IsConnected(candidate.Id))
            {
                continue;
            }

            var load = 0;
            foreach (var n in nodes)
            {
                if (n.RelayNodeId == candidate.Id.Value && n.Id != natted.Id)
                {
                    load++;
                }
            }

            var sameRegion = candidate.Region == natted.Region;
            if (best is null || (sameRegion && !bestSameRegion) || (sameRegion == bestSameRegion && load < bestLoad))
            {
                best = candidate;
                bestLoad = load;
                bestSameRegion = sameRegion;
            }
        }

        if (best is null)
        {
            Log.NoRelay(logger, natted.Id.Value);
            return;
        }

        // A fresh tunnel secret per assignment: the relay learns it in a grant, the NAT'd node in its assignment.
        var secret = Google.Protobuf.ByteString.CopyFrom(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        store.SetRelay(natted.Id, best.Id);
        sessions.TrySend(best.Id, new OrchestratorMessage { RelayGrant = new RelayGrant { NodeId = natted.Id.Value, Secret = secret } });
        sessions.TrySend(natted.Id, new OrchestratorMessage
        {
            RelayAssignment = new RelayAssignment
            {
                RelayNodeId = best.Id.Value,
                RelayEndpoint = best.RelayEndpoint,
                PublicHost = best.PublicHost,
                Secret = secret,
                RelayToken = relayTokens.Issue(natted.Id, natted.Operator, best.Id.Value),
            },
        });
        Log.RelayAssigned(logger, best.Id.Value, natted.Id.Value);
    }

    private static bool IsOnlineRelay(IReadOnlyList<NodeRecord> nodes, string id)
    {
        foreach (var n in nodes)
        {
            if (n.Id.Value == id)
            {
                return n.Online;
            }
        }

        return false;
    }
}
