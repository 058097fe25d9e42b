using DeCloud.Protocol.V1;

namespace DeCloud.Agent.Hypervisors;

/// <summary>What the agent needs from a hypervisor. Every operation is idempotent (creating an existing VM, stopping a stopped one succeed).</summary>
internal interface IHypervisor : IAsyncDisposable
{
    /// <summary>A short name for logs (<c>libvirt test:///default</c>, <c>simulated</c>).</summary>
    string Description { get; }

    /// <summary>Defines the VM from its spec (if not defined yet) and starts it when <paramref name="start"/>.</summary>
    Task CreateAsync(CreateVm spec, bool start, CancellationToken cancellationToken);

    Task StartAsync(string vmId, CancellationToken cancellationToken);

    Task StopAsync(string vmId, bool force, CancellationToken cancellationToken);

    /// <summary>Stops and undefines the VM; succeeds when it does not exist.</summary>
    Task DeleteAsync(string vmId, CancellationToken cancellationToken);

    /// <summary>Applies a NIC bandwidth cap (both directions) live and to the VM's definition.</summary>
    Task SetBandwidthAsync(string vmId, DeCloud.Virtualization.Qos.BandwidthLimit limit, CancellationToken cancellationToken);

    /// <summary>The power state of every VM the hypervisor knows, by VM id.</summary>
    Task<IReadOnlyDictionary<string, VmPowerState>> ListAsync(CancellationToken cancellationToken);
}

/// <summary>A hypervisor operation failed; the message says what and why.</summary>
internal sealed class HypervisorException(string message, Exception? inner = null) : Exception(message, inner);
