using System.Globalization;
using System.Runtime.InteropServices;

namespace DeCloud.Virtualization.Libvirt;

/// <summary>
/// A libvirt domain (a VM definition, running or not). Owns a <c>virDomainPtr</c>; dispose it when done.
/// Name and UUID are read once at creation; every other property is asked of libvirt on each call, so a
/// domain that vanished meanwhile yields a <see cref="LibvirtException"/> with <see cref="LibvirtException.IsDomainNotFound"/>.
/// </summary>
public sealed unsafe class LibvirtDomain : IDisposable
{
    private const uint AffectLive = 1;
    private const uint AffectConfig = 2;
    private const uint UndefineNvram = 4;
    private const uint XmlInactive = 2;

    private readonly SafeDomainHandle handle;

    internal LibvirtDomain(LibvirtConnection connection, SafeDomainHandle handle)
    {
        Connection = connection;
        this.handle = handle;
        Name = Marshal.PtrToStringUTF8(NativeMethods.virDomainGetName(handle.DangerousGetHandle())) ?? string.Empty;
        Uuid = NativeMethods.GetUuid(handle.DangerousGetHandle());
    }

    /// <summary>The connection this domain belongs to.</summary>
    public LibvirtConnection Connection { get; }

    /// <summary>The domain's name.</summary>
    public string Name { get; }

    /// <summary>The domain's UUID.</summary>
    public Guid Uuid { get; }

    internal SafeDomainHandle Handle => handle;

    /// <summary>Starts a defined domain.</summary>
    public void Start() => Check(NativeMethods.virDomainCreate(handle), "virDomainCreate");

    /// <summary>Starts a defined domain.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default) => Task.Run(Start, cancellationToken);

    /// <summary>Asks the guest to shut down (returns once asked, not once stopped; watch <see cref="LibvirtConnection.DomainLifecycle"/>).</summary>
    public void Shutdown(ShutdownMode mode = ShutdownMode.Default) => Check(NativeMethods.virDomainShutdownFlags(handle, (uint)mode), "virDomainShutdownFlags");

    /// <summary>Asks the guest to shut down.</summary>
    public Task ShutdownAsync(ShutdownMode mode = ShutdownMode.Default, CancellationToken cancellationToken = default) =>
        Task.Run(() => Shutdown(mode), cancellationToken);

    /// <summary>Stops the domain immediately (power cut).</summary>
    public void Destroy() => Check(NativeMethods.virDomainDestroy(handle), "virDomainDestroy");

    /// <summary>Stops the domain immediately.</summary>
    public Task DestroyAsync(CancellationToken cancellationToken = default) => Task.Run(Destroy, cancellationToken);

    /// <summary>Reboots the guest.</summary>
    public void Reboot(ShutdownMode mode = ShutdownMode.Default) => Check(NativeMethods.virDomainReboot(handle, (uint)mode), "virDomainReboot");

    /// <summary>Reboots the guest.</summary>
    public Task RebootAsync(ShutdownMode mode = ShutdownMode.Default, CancellationToken cancellationToken = default) =>
        Task.Run(() => Reboot(mode), cancellationToken);

    /// <summary>Pauses the domain's vCPUs.</summary>
    public Task SuspendAsync(CancellationToken cancellationToken = default) =>
        Task.Run(() => Check(NativeMethods.virDomainSuspend(handle), "virDomainSuspend"), cancellationToken);

    /// <summary>Resumes a paused domain.</summary>
    public Task ResumeAsync(CancellationToken cancellationToken = default) =>
        Task.Run(() => Check(NativeMethods.virDomainResume(handle), "virDomainResume"), cancellationToken);

    /// <summary>Removes the definition (a running domain keeps running as a transient one until stopped).</summary>
    /// <param name="removeNvram">Also delete a UEFI domain's NVRAM file.</param>
    public void Undefine(bool removeNvram = false) =>
        Check(NativeMethods.virDomainUndefineFlags(handle, removeNvram ? UndefineNvram : 0), "virDomainUndefineFlags");

    /// <summary>Removes the definition.</summary>
    public Task UndefineAsync(bool removeNvram = false, CancellationToken cancellationToken = default) =>
        Task.Run(() => Undefine(removeNvram), cancellationToken);

    /// <summary>The run state and libvirt's reason code for it.</summary>
    public (DomainState State, int Reason) GetState()
    {
        Check(NativeMethods.virDomainGetState(handle, out var state, out var reason, 0), "virDomainGetState");
        return ((DomainState)state, reason);
    }

    /// <summary>The run state.</summary>
    public Task<DomainState> GetStateAsync(CancellationToken cancellationToken = default) =>
        Task.Run(() => GetState().State, cancellationToken);

    /// <summary>True when the domain is running.</summary>
    public bool IsActive()
    {
        var result = NativeMethods.virDomainIsActive(handle);
        Check(result, "virDomainIsActive");
        return result == 1;
    }

    /// <summary>State, memory, vCPUs and CPU time (<c>virDomainGetInfo</c>).</summary>
    public DomainInfo GetInfo()
    {
        Check(NativeMethods.virDomainGetInfo(handle, out var info), "virDomainGetInfo");
        return new DomainInfo(
            (DomainState)info.State,
            info.MaxMemKiB.Value,
            info.MemoryKiB.Value,
            info.VirtualCpuCount,
            TimeSpan.FromTicks((long)(info.CpuTimeNanoseconds / 100)));
    }

    /// <summary>State, memory, vCPUs and CPU time.</summary>
    public Task<DomainInfo> GetInfoAsync(CancellationToken cancellationToken = default) => Task.Run(GetInfo, cancellationToken);

    /// <summary>The domain XML: live when running (with runtime details such as tap names), else persistent.</summary>
    /// <param name="inactive">Return the persistent definition even while running.</param>
    public string GetXml(bool inactive = false)
    {
        var xml = NativeMethods.TakeString(NativeMethods.virDomainGetXMLDesc(handle, inactive ? XmlInactive : 0));
        return xml ?? throw LibvirtException.FromLastError("virDomainGetXMLDesc");
    }

    /// <summary>The domain XML.</summary>
    public Task<string> GetXmlAsync(bool inactive = false, CancellationToken cancellationToken = default) =>
        Task.Run(() => GetXml(inactive), cancellationToken);

    /// <summary>
    /// Changes a NIC's bandwidth (<c>virDomainSetInterfaceParameters</c>), live on a running domain and in the
    /// persistent definition. <paramref name="device"/> is the NIC's target device (e.g. <c>vnet0</c>) or MAC address.
    /// </summary>
    public void SetInterfaceBandwidth(string device, InterfaceBandwidth bandwidth, bool live = true, bool persistent = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        var parameters = stackalloc VirTypedParameter[6];
        parameters[0] = VirTypedParameter.Create("inbound.average", VirTypedParameter.TypeUInt, bandwidth.Inbound.AverageKBps);
        parameters[1] = VirTypedParameter.Create("inbound.peak", VirTypedParameter.TypeUInt, bandwidth.Inbound.PeakKBps);
        parameters[2] = VirTypedParameter.Create("inbound.burst", VirTypedParameter.TypeUInt, bandwidth.Inbound.BurstKiB);
        parameters[3] = VirTypedParameter.Create("outbound.average", VirTypedParameter.TypeUInt, bandwidth.Outbound.AverageKBps);
        parameters[4] = VirTypedParameter.Create("outbound.peak", VirTypedParameter.TypeUInt, bandwidth.Outbound.PeakKBps);
        parameters[5] = VirTypedParameter.Create("outbound.burst", VirTypedParameter.TypeUInt, bandwidth.Outbound.BurstKiB);
        Check(NativeMethods.virDomainSetInterfaceParameters(handle, device, parameters, 6, Affect(live, persistent)), $"virDomainSetInterfaceParameters('{device}')");
    }

    /// <summary>Changes a NIC's bandwidth.</summary>
    public Task SetInterfaceBandwidthAsync(string device, InterfaceBandwidth bandwidth, bool live = true, bool persistent = true, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        return Task.Run(() => SetInterfaceBandwidth(device, bandwidth, live, persistent), cancellationToken);
    }

    /// <summary>Reads a NIC's bandwidth; the live values when running unless <paramref name="persistent"/>.</summary>
    public InterfaceBandwidth GetInterfaceBandwidth(string device, bool persistent = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        var values = ReadTypedParameters(
            (VirTypedParameter* p, ref int n) => NativeMethods.virDomainGetInterfaceParameters(handle, device, p, ref n, persistent ? AffectConfig : 0),
            $"virDomainGetInterfaceParameters('{device}')");
        uint Get(string key) => values.TryGetValue(key, out var v) ? (uint)v : 0;
        return new InterfaceBandwidth(
            new InterfaceRate(Get("inbound.average"), Get("inbound.peak"), Get("inbound.burst")),
            new InterfaceRate(Get("outbound.average"), Get("outbound.peak"), Get("outbound.burst")));
    }

    /// <summary>Reads a NIC's bandwidth.</summary>
    public Task<InterfaceBandwidth> GetInterfaceBandwidthAsync(string device, bool persistent = false, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        return Task.Run(() => GetInterfaceBandwidth(device, persistent), cancellationToken);
    }

    /// <summary>
    /// Sets the vCPU bandwidth (<c>vcpu_period</c>, <c>vcpu_quota</c>, <c>cpu_shares</c>) live and persistently;
    /// on the qemu driver this lands in the domain's cgroup (<c>cpu.cfs_quota_us</c> or <c>cpu.max</c>).
    /// </summary>
    public void SetCpuSchedule(CpuSchedule schedule, bool live = true, bool persistent = true)
    {
        ValidateSchedule(schedule);
        var parameters = stackalloc VirTypedParameter[3];
        var count = 0;
        parameters[count++] = VirTypedParameter.Create("vcpu_period", VirTypedParameter.TypeULLong, schedule.PeriodMicroseconds);
        parameters[count++] = VirTypedParameter.Create("vcpu_quota", VirTypedParameter.TypeLLong, unchecked((ulong)schedule.QuotaMicroseconds));
        if (schedule.Shares != 0)
        {
            parameters[count++] = VirTypedParameter.Create("cpu_shares", VirTypedParameter.TypeULLong, schedule.Shares);
        }

        Check(NativeMethods.virDomainSetSchedulerParametersFlags(handle, parameters, count, Affect(live, persistent)), "virDomainSetSchedulerParametersFlags");
    }

    /// <summary>Sets the vCPU bandwidth.</summary>
    public Task SetCpuScheduleAsync(CpuSchedule schedule, bool live = true, bool persistent = true, CancellationToken cancellationToken = default)
    {
        ValidateSchedule(schedule);
        return Task.Run(() => SetCpuSchedule(schedule, live, persistent), cancellationToken);
    }

    /// <summary>Every scheduler parameter the driver reports (e.g. <c>cpu_shares</c>, <c>vcpu_quota</c>; <c>weight</c> on the test driver).</summary>
    public IReadOnlyDictionary<string, long> GetSchedulerParameters(bool persistent = false)
    {
        var type = NativeMethods.virDomainGetSchedulerType(handle, out var available);
        if (type == 0)
        {
            throw LibvirtException.FromLastError("virDomainGetSchedulerType");
        }

        NativeMemory.Free((void*)type);
        // The flag-less call for the current state: some drivers (the test driver) reject the flags variant.
        return ReadTypedParameters(
            persistent
                ? (VirTypedParameter* p, ref int n) => NativeMethods.virDomainGetSchedulerParametersFlags(handle, p, ref n, AffectConfig)
                : (VirTypedParameter* p, ref int n) => NativeMethods.virDomainGetSchedulerParameters(handle, p, ref n),
            "virDomainGetSchedulerParametersFlags",
            available);
    }

    /// <summary>Every scheduler parameter the driver reports.</summary>
    public Task<IReadOnlyDictionary<string, long>> GetSchedulerParametersAsync(bool persistent = false, CancellationToken cancellationToken = default) =>
        Task.Run(() => GetSchedulerParameters(persistent), cancellationToken);

    /// <summary>
    /// Sends a raw QMP-style command to the qemu guest agent (<c>virDomainQemuAgentCommand</c>) and returns its
    /// JSON reply. Throws <see cref="LibvirtException"/> (code <see cref="LibvirtException.AgentUnresponsive"/>)
    /// when the agent does not answer within <paramref name="timeout"/>.
    /// </summary>
    public string AgentCommand(string commandJson, TimeSpan timeout)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(commandJson);
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.FromSeconds(1));
        var seconds = (int)Math.Min(int.MaxValue, Math.Ceiling(timeout.TotalSeconds));
        return NativeMethods.TakeString(NativeMethods.virDomainQemuAgentCommand(handle, commandJson, seconds, 0))
            ?? throw LibvirtException.FromLastError("virDomainQemuAgentCommand");
    }

    /// <summary>Sends a command to the qemu guest agent.</summary>
    public Task<string> AgentCommandAsync(string commandJson, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(commandJson);
        return Task.Run(() => AgentCommand(commandJson, timeout), cancellationToken);
    }

    /// <summary>Releases the domain handle (the domain itself is untouched).</summary>
    public void Dispose() => handle.Dispose();

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Name} ({Uuid:D})");

    private static void ValidateSchedule(CpuSchedule schedule)
    {
        if (schedule.PeriodMicroseconds is < 1000 or > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(schedule), schedule.PeriodMicroseconds,
                "CpuSchedule.PeriodMicroseconds must be between 1000 and 1000000.");
        }

        if (schedule.QuotaMicroseconds != -1 && schedule.QuotaMicroseconds is < 1000 or > 17_592_186_044_415)
        {
            throw new ArgumentOutOfRangeException(nameof(schedule), schedule.QuotaMicroseconds,
                "CpuSchedule.QuotaMicroseconds must be -1 (unlimited) or between 1000 and 17592186044415.");
        }

        if (schedule.Shares > 262_144)
        {
            throw new ArgumentOutOfRangeException(nameof(schedule), schedule.Shares, "CpuSchedule.Shares must be at most 262144 (0 leaves shares unchanged).");
        }
    }

    private static uint Affect(bool live, bool persistent)
    {
        if (!live && !persistent)
        {
            throw new ArgumentException("Pass live, persistent or both; a change that affects neither does nothing.", nameof(live));
        }

        return (live ? AffectLive : 0) | (persistent ? AffectConfig : 0);
    }

    private delegate int TypedParameterReader(VirTypedParameter* parameters, ref int count);

    private static Dictionary<string, long> ReadTypedParameters(TypedParameterReader read, string operation, int capacity = 0)
    {
        var count = capacity;
        if (count == 0)
        {
            // First call with count 0 asks libvirt how many parameters there are.
            Check(read(null, ref count), operation);
        }

        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        if (count == 0)
        {
            return result;
        }

        var parameters = (VirTypedParameter*)NativeMemory.AllocZeroed((nuint)count, (nuint)sizeof(VirTypedParameter));
        try
        {
            Check(read(parameters, ref count), operation);
            for (var i = 0; i < count; i++)
            {
                result[parameters[i].Name] = parameters[i].AsInt64();
            }

            NativeMethods.virTypedParamsClear(parameters, count);
        }
        finally
        {
            NativeMemory.Free(parameters);
        }

        return result;
    }

    private static void Check(int result, string operation)
    {
        if (result < 0)
        {
            throw LibvirtException.FromLastError(operation);
        }
    }
}
