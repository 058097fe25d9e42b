using DeCloud.Core.Model;

namespace DeCloud.Core.Lifecycle;

/// <summary>
/// A VM state change that <see cref="VmTransitionTable"/> does not allow was refused; nothing was stored.
/// </summary>
public sealed class VmTransitionException : DeCloudException
{
    internal VmTransitionException(VmId vmId, VmState from, VmState to)
        : base(BuildMessage(vmId, from, to))
    {
        VmId = vmId;
        From = from;
        To = to;
    }

    /// <summary>The VM.</summary>
    public VmId VmId { get; }

    /// <summary>The state the VM is in (and stays in).</summary>
    public VmState From { get; }

    /// <summary>The refused target state.</summary>
    public VmState To { get; }

    private static string BuildMessage(VmId vmId, VmState from, VmState to)
    {
        var next = VmTransitionTable.NextStates(from);
        var allowed = next.Count == 0 ? "none (terminal state)" : string.Join(", ", next);
        return $"VM {vmId} cannot go from {from} to {to}; allowed from {from}: {allowed}.";
    }
}
