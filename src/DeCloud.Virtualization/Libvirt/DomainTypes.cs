namespace DeCloud.Virtualization.Libvirt;

/// <summary>libvirt's <c>virDomainState</c>.</summary>
public enum DomainState
{
    /// <summary>No state.</summary>
    NoState = 0,

    /// <summary>The domain is running.</summary>
    Running = 1,

    /// <summary>The domain is blocked on a resource.</summary>
    Blocked = 2,

    /// <summary>The domain is paused.</summary>
    Paused = 3,

    /// <summary>The domain is being shut down.</summary>
    ShuttingDown = 4,

    /// <summary>The domain is shut off (defined, not running).</summary>
    ShutOff = 5,

    /// <summary>The domain crashed.</summary>
    Crashed = 6,

    /// <summary>The domain is suspended by guest power management.</summary>
    PowerManagementSuspended = 7,
}

/// <summary>How <see cref="LibvirtDomain.ShutdownAsync"/> asks the guest to stop.</summary>
public enum ShutdownMode
{
    /// <summary>Let the hypervisor choose (ACPI, then agent).</summary>
    Default = 0,

    /// <summary>Press the ACPI power button.</summary>
    Acpi = 1,

    /// <summary>Ask the qemu guest agent to power off.</summary>
    GuestAgent = 2,
}

/// <summary>The result of <c>virDomainGetInfo</c>.</summary>
/// <param name="State">The run state.</param>
/// <param name="MaxMemoryKiB">The maximum memory in KiB.</param>
/// <param name="MemoryKiB">The memory in use in KiB.</param>
/// <param name="VirtualCpuCount">The number of virtual CPUs.</param>
/// <param name="CpuTime">CPU time used.</param>
public readonly record struct DomainInfo(DomainState State, ulong MaxMemoryKiB, ulong MemoryKiB, int VirtualCpuCount, TimeSpan CpuTime);

/// <summary>Bandwidth of one direction of a NIC in libvirt units (kB/s and KiB; 0 means unlimited).</summary>
/// <param name="AverageKBps">Average rate in kilobytes (1000 bytes) per second.</param>
/// <param name="PeakKBps">Peak rate in kilobytes per second (0: none).</param>
/// <param name="BurstKiB">Burst size in KiB (0: none).</param>
public readonly record struct InterfaceRate(uint AverageKBps, uint PeakKBps, uint BurstKiB)
{
    /// <summary>No limit.</summary>
    public static InterfaceRate Unlimited => default;
}

/// <summary>Live or persistent interface bandwidth: inbound is traffic towards the guest.</summary>
/// <param name="Inbound">Traffic into the guest.</param>
/// <param name="Outbound">Traffic out of the guest.</param>
public readonly record struct InterfaceBandwidth(InterfaceRate Inbound, InterfaceRate Outbound);

/// <summary>CPU bandwidth for a domain's vCPUs, as <c>virDomainSetSchedulerParameters</c> takes it.</summary>
/// <param name="PeriodMicroseconds">The enforcement period (1000..1000000 µs).</param>
/// <param name="QuotaMicroseconds">CPU time per vCPU per period (-1: unlimited; otherwise 1000..17592186044415 µs).</param>
/// <param name="Shares">Relative weight against other domains (0: leave unchanged).</param>
public readonly record struct CpuSchedule(ulong PeriodMicroseconds, long QuotaMicroseconds, ulong Shares);

/// <summary>What changed in a domain's life (<c>virDomainEventType</c>).</summary>
public enum DomainLifecycleEventKind
{
    /// <summary>Defined or updated.</summary>
    Defined = 0,

    /// <summary>Undefined.</summary>
    Undefined = 1,

    /// <summary>Started.</summary>
    Started = 2,

    /// <summary>Suspended (paused).</summary>
    Suspended = 3,

    /// <summary>Resumed.</summary>
    Resumed = 4,

    /// <summary>Stopped (shut off, destroyed, crashed).</summary>
    Stopped = 5,

    /// <summary>The guest started or finished shutting down.</summary>
    Shutdown = 6,

    /// <summary>Suspended by guest power management.</summary>
    PowerManagementSuspended = 7,

    /// <summary>Crashed.</summary>
    Crashed = 8,
}

/// <summary>A domain lifecycle event, raised off libvirt's event loop thread in the order libvirt emitted them.</summary>
public sealed class DomainLifecycleEventArgs : EventArgs
{
    internal DomainLifecycleEventArgs(string domainName, Guid domainUuid, DomainLifecycleEventKind kind, int detail)
    {
        DomainName = domainName;
        DomainUuid = domainUuid;
        Kind = kind;
        Detail = detail;
    }

    /// <summary>The domain's name.</summary>
    public string DomainName { get; }

    /// <summary>The domain's UUID.</summary>
    public Guid DomainUuid { get; }

    /// <summary>What happened.</summary>
    public DomainLifecycleEventKind Kind { get; }

    /// <summary>libvirt's detail code for <see cref="Kind"/> (e.g. <c>VIR_DOMAIN_EVENT_STOPPED_DESTROYED</c> = 2).</summary>
    public int Detail { get; }
}

/// <summary>The qemu guest agent connected or disconnected (<c>VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE</c>).</summary>
public sealed class AgentLifecycleEventArgs : EventArgs
{
    internal AgentLifecycleEventArgs(string domainName, Guid domainUuid, bool connected, int reason)
    {
        DomainName = domainName;
        DomainUuid = domainUuid;
        Connected = connected;
        Reason = reason;
    }

    /// <summary>The domain's name.</summary>
    public string DomainName { get; }

    /// <summary>The domain's UUID.</summary>
    public Guid DomainUuid { get; }

    /// <summary>True when the agent's channel connected, false when it disconnected.</summary>
    public bool Connected { get; }

    /// <summary>libvirt's reason code (1: domain started, 2: channel event).</summary>
    public int Reason { get; }
}
