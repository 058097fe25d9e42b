using System.Collections.Concurrent;
using DeCloud.Protocol.V1;

namespace DeCloud.Agent.Hypervisors;

/// <summary>
/// An in-memory hypervisor: VMs are entries with a power state, nothing boots. For load tests of the
/// control plane (thousands of simulated agents) and machines without libvirt. Like libvirt's test
/// driver, it forgets everything when the process ends, so the agent's reconciliation recreates VMs.
/// </summary>
internal sealed class SimulatedHypervisor : IHypervisor
{
    private readonly ConcurrentDictionary<string, VmPowerState> _vms = new(StringComparer.Ordinal);

    public string Description => "simulated (in memory)";

    public Task CreateAsync(CreateVm spec, bool start, CancellationToken cancellationToken)
    {
        _vms.AddOrUpdate(spec.VmId, start ? VmPowerState.Running : VmPowerState.Stopped, (_, s) => start ? VmPowerState.Running : s);
        return Task.CompletedTask;
    }

    public Task StartAsync(string vmId, CancellationToken cancellationToken) => Set(vmId, VmPowerState.Running);

    public Task StopAsync(string vmId, bool force, CancellationToken cancellationToken) => Set(vmId, VmPowerState.Stopped);

    public Task DeleteAsync(string vmId, CancellationToken cancellationToken)
    {
        _vms.TryRemove(vmId, out _);
        return Task.CompletedTask;
    }

    public Task SetBandwidthAsync(string vmId, DeCloud.Virtualization.Qos.BandwidthLimit limit, CancellationToken cancellationToken) =>
        _vms.ContainsKey(vmId) ? Task.CompletedTask : Task.FromException(new HypervisorException($"VM {vmId} is not defined."));

    public Task<IReadOnlyDictionary<string, VmPowerState>> ListAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyDictionary<string, VmPowerState>>(new Dictionary<string, VmPowerState>(_vms, StringComparer.Ordinal));

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private Task Set(string vmId, VmPowerState state)
    {
        if (!_vms.ContainsKey(vmId))
        {
            return Task.FromException(new HypervisorException($"VM {vmId} is not defined."));
        }

        _vms[vmId] = state;
        return Task.CompletedTask;
    }
}
