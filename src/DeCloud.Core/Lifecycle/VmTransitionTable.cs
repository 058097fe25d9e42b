using System.Collections.Frozen;

namespace DeCloud.Core.Lifecycle;

/// <summary>
/// The explicit table of allowed VM state changes. <see cref="VmLifecycle"/> refuses everything else.
/// </summary>
/// <remarks>
/// <code>
/// Pending      -> Scheduled, Failed, Deleted
/// Scheduled    -> Provisioning, Pending (node refused, reschedule), Failed, Deleting
/// Provisioning -> Starting, Running, Failed, Deleting, Unreachable
/// Starting     -> Running, Stopping, Failed, Deleting, Unreachable
/// Running      -> Stopping, Stopped, Migrating, Unreachable, Deleting, Failed
/// Stopping     -> Stopped, Running (stop failed), Failed, Deleting, Unreachable
/// Stopped      -> Starting, Migrating, Deleting, Failed, Unreachable
/// Migrating    -> Running, Stopped, Failed, Deleting
/// Unreachable  -> Running, Stopped, Failed, Deleting
/// Deleting     -> Deleted
/// Failed       -> Pending (retry), Deleting
/// Deleted      -> (terminal)
/// </code>
/// </remarks>
public static class VmTransitionTable
{
    private static readonly FrozenDictionary<VmState, VmState[]> Allowed = new Dictionary<VmState, VmState[]>
    {
        [VmState.Pending] = [VmState.Scheduled, VmState.Failed, VmState.Deleted],
        [VmState.Scheduled] = [VmState.Provisioning, VmState.Pending, VmState.Failed, VmState.Deleting],
        [VmState.Provisioning] = [VmState.Starting, VmState.Running, VmState.Failed, VmState.Deleting, VmState.Unreachable],
        [VmState.Starting] = [VmState.Running, VmState.Stopping, VmState.Failed, VmState.Deleting, VmState.Unreachable],
        [VmState.Running] = [VmState.Stopping, VmState.Stopped, VmState.Migrating, VmState.Unreachable, VmState.Deleting, VmState.Failed],
        [VmState.Stopping] = [VmState.Stopped, VmState.Running, VmState.Failed, VmState.Deleting, VmState.Unreachable],
        [VmState.Stopped] = [VmState.Starting, VmState.Migrating, VmState.Deleting, VmState.Failed, VmState.Unreachable],
        [VmState.Migrating] = [VmState.Running, VmState.Stopped, VmState.Failed, VmState.Deleting],
        [VmState.Unreachable] = [VmState.Running, VmState.Stopped, VmState.Failed, VmState.Deleting],
        [VmState.Deleting] = [VmState.Deleted],
        [VmState.Failed] = [VmState.Pending, VmState.Deleting],
        [VmState.Deleted] = [],
    }.ToFrozenDictionary();

    /// <summary>Every state, in declaration order.</summary>
    public static IReadOnlyList<VmState> States { get; } = Enum.GetValues<VmState>();

    /// <summary>True when <paramref name="state"/> is a defined state.</summary>
    public static bool IsDefined(VmState state) => Allowed.ContainsKey(state);

    /// <summary>True when a VM may go from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static bool IsAllowed(VmState from, VmState to) =>
        Allowed.TryGetValue(from, out var targets) && Array.IndexOf(targets, to) >= 0;

    /// <summary>The states reachable in one step from <paramref name="from"/> (empty for terminal or undefined states).</summary>
    public static IReadOnlyList<VmState> NextStates(VmState from) =>
        Allowed.TryGetValue(from, out var targets) ? targets : [];

    /// <summary>True for states that never change again (<see cref="VmState.Deleted"/>).</summary>
    public static bool IsTerminal(VmState state) => NextStates(state).Count == 0;
}
