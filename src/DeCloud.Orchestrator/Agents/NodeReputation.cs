using DeCloud.Core.Registry;
using DeCloud.Orchestrator.Storage;

namespace DeCloud.Orchestrator.Agents;

/// <summary>
/// Feeds Core's reputation counters from acknowledged VM state changes: a VM that came up on its node counts as hosted
/// there, one deleted on request after that as completed cleanly. Each counts once per VM (the VM id is the
/// idempotency key), so a repeated acknowledgement or a retry does not count twice.
/// </summary>
internal sealed class NodeReputation(NodeRegistry registry)
{
    public async Task RecordAsync(VmStateChange change, CancellationToken cancellationToken = default)
    {
        switch (change.State)
        {
            case VmStates.Running:
                await registry.RecordVmHostedAsync(change.Node, "hosted/" + change.Vm, cancellationToken).ConfigureAwait(false);
                break;
            case VmStates.Deleted:
                await registry.RecordVmCompletedCleanlyAsync(change.Node, "completed/" + change.Vm, cancellationToken).ConfigureAwait(false);
                break;
            default:
                break;
        }
    }
}
