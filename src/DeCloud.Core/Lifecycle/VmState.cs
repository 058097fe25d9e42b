namespace DeCloud.Core.Lifecycle;

/// <summary>The state of a VM. <see cref="VmTransitionTable"/> says which changes are allowed.</summary>
public enum VmState
{
    /// <summary>Accepted, waiting for a node.</summary>
    Pending = 0,

    /// <summary>A node was chosen; the create command is on its way to the agent.</summary>
    Scheduled = 1,

    /// <summary>The agent acknowledged the command and is creating the VM (disk, network, domain).</summary>
    Provisioning = 2,

    /// <summary>The VM is booting.</summary>
    Starting = 3,

    /// <summary>The VM runs and its node reports it in heartbeats.</summary>
    Running = 4,

    /// <summary>A stop was requested.</summary>
    Stopping = 5,

    /// <summary>The VM is shut off; its disk and reservation remain.</summary>
    Stopped = 6,

    /// <summary>The VM's data is moving to another node.</summary>
    Migrating = 7,

    /// <summary>The VM's node stopped sending heartbeats; the VM may still run.</summary>
    Unreachable = 8,

    /// <summary>Deletion was requested; resources are being released.</summary>
    Deleting = 9,

    /// <summary>Gone. Terminal.</summary>
    Deleted = 10,

    /// <summary>Something went wrong; the VM can be retried (back to Pending) or deleted.</summary>
    Failed = 11,
}

/// <summary>What caused a transition (kept in the transition history).</summary>
public enum VmTransitionCause
{
    /// <summary>A user or API command.</summary>
    Command = 0,

    /// <summary>An agent acknowledged a command.</summary>
    CommandAcknowledged = 1,

    /// <summary>An agent's heartbeat reported the VM in a new state.</summary>
    Heartbeat = 2,

    /// <summary>The node health monitor (node offline or back online).</summary>
    HealthCheck = 3,

    /// <summary>A deadline passed.</summary>
    Timeout = 4,

    /// <summary>An operator fixed something by hand.</summary>
    Manual = 5,

    /// <summary>The scheduler placed the VM.</summary>
    Scheduler = 6,
}
