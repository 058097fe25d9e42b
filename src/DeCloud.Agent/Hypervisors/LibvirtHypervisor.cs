using DeCloud.Core.Model;
using DeCloud.Protocol.V1;
using DeCloud.Virtualization;
using DeCloud.Virtualization.DomainXml;
using DeCloud.Virtualization.Libvirt;
using Microsoft.Extensions.Logging;

namespace DeCloud.Agent.Hypervisors;

/// <summary>
/// VMs as libvirt domains through DeCloud.Virtualization. A VM's domain is named <c>decloud-&lt;vm id&gt;</c>
/// and its UUID is the VM id, so the agent finds it again after a restart. With the in-process test driver
/// (<c>test:///...</c>) domains are <c>type='test'</c>; otherwise the XML comes from <see cref="DomainXmlWriter"/>.
/// </summary>
internal sealed class LibvirtHypervisor : IHypervisor
{
    private const string Prefix = "decloud-";
    private readonly LibvirtConnection _connection;
    private readonly bool _testDriver;
    private readonly string _uri;

    public LibvirtHypervisor(string uri, ILoggerFactory? loggerFactory)
    {
        _uri = uri;
        _testDriver = uri.StartsWith("test:", StringComparison.Ordinal);
        try
        {
            _connection = LibvirtConnection.Open(uri, loggerFactory);
        }
        catch (Exception ex) when (ex is VirtualizationException or DllNotFoundException)
        {
            throw new InvalidOperationException($"{nameof(AgentOptions.LibvirtUri)} '{uri}' cannot be opened: {ex.Message} (install libvirt0, or use Hypervisor=simulated).", ex);
        }
    }

    public string Description => "libvirt " + _uri;

    public async Task CreateAsync(CreateVm spec, bool start, CancellationToken cancellationToken)
    {
        var domain = await FindAsync(spec.VmId, cancellationToken).ConfigureAwait(false);
        try
        {
            if (domain is null)
            {
                var r = spec.Resources ?? new Capacity { ComputePoints = 1, MemoryMib = 256 };
                var name = Prefix + spec.VmId;
                var uuid = VmId.Parse(spec.VmId).Value;
                var xml = _testDriver
                    ? $"<domain type='test'><name>{name}</name><uuid>{uuid:D}</uuid><memory unit='MiB'>{Math.Max(1, r.MemoryMib)}</memory><vcpu>{Math.Max(1, r.ComputePoints)}</vcpu><os><type>hvm</type></os></domain>"
                    : DomainXmlWriter.Render(new DomainDefinition
                    {
                        Name = name,
                        Uuid = uuid,
                        Hypervisor = HypervisorKind.Qemu,
                        VirtualCpus = Math.Max(1, r.ComputePoints),
                        MemoryMiB = Math.Max(1, r.MemoryMib),
                    });
                domain = await _connection.DefineAsync(xml, cancellationToken).ConfigureAwait(false);
            }

            if (start && !domain.IsActive())
            {
                await domain.StartAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (VirtualizationException ex)
        {
            throw new HypervisorException($"libvirt could not create VM {spec.VmId}: {ex.Message}", ex);
        }
        finally
        {
            domain?.Dispose();
        }
    }

    public Task StartAsync(string vmId, CancellationToken cancellationToken) =>
        WithDomainAsync(vmId, "start", async d =>
        {
            if (!d.IsActive())
            {
                await d.StartAsync(cancellationToken).ConfigureAwait(false);
            }
        }, cancellationToken);

    public Task StopAsync(string vmId, bool force, CancellationToken cancellationToken) =>
        WithDomainAsync(vmId, "stop", async d =>
        {
            if (d.IsActive())
            {
                if (force || _testDriver)
                {
                    await d.DestroyAsync(cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await d.ShutdownAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                }
            }
        }, cancellationToken);

    public async Task DeleteAsync(string vmId, CancellationToken cancellationToken)
    {
        using var d = await FindAsync(vmId, cancellationToken).ConfigureAwait(false);
        if (d is null)
        {
            return;
        }

        try
        {
            if (d.IsActive())
            {
                await d.DestroyAsync(cancellationToken).ConfigureAwait(false);
            }

            await d.UndefineAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (VirtualizationException ex)
        {
            throw new HypervisorException($"libvirt could not delete VM {vmId}: {ex.Message}", ex);
        }
    }

    /// <summary>Domains created here have no NIC yet (the host has no VM network configured), so there is nothing to shape.</summary>
    public Task SetBandwidthAsync(string vmId, long bytesPerSecond, CancellationToken cancellationToken) =>
        WithDomainAsync(vmId, "set bandwidth on", _ => Task.CompletedTask, cancellationToken);

    public async Task<IReadOnlyDictionary<string, VmPowerState>> ListAsync(CancellationToken cancellationToken)
    {
        var domains = await _connection.ListAllDomainsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        var map = new Dictionary<string, VmPowerState>(StringComparer.Ordinal);
        foreach (var d in domains)
        {
            using (d)
            {
                if (!d.Name.StartsWith(Prefix, StringComparison.Ordinal))
                {
                    continue;
                }

                map[d.Name[Prefix.Length..]] = d.GetState().State switch
                {
                    DomainState.Running or DomainState.Blocked => VmPowerState.Running,
                    DomainState.Paused => VmPowerState.Paused,
                    DomainState.ShutOff or DomainState.ShuttingDown => VmPowerState.Stopped,
                    DomainState.Crashed => VmPowerState.Crashed,
                    _ => VmPowerState.Unspecified,
                };
            }
        }

        return map;
    }

    public ValueTask DisposeAsync() => _connection.DisposeAsync();

    private async Task<LibvirtDomain?> FindAsync(string vmId, CancellationToken cancellationToken)
    {
        if (!VmId.TryParse(vmId, null, out var id))
        {
            throw new ArgumentException($"'{vmId}' is not a VM id.");
        }

        try
        {
            return await _connection.LookupByUuidAsync(id.Value, cancellationToken).ConfigureAwait(false);
        }
        catch (LibvirtException ex) when (ex.Code == LibvirtException.NoDomain)
        {
            return null;
        }
    }

    private async Task WithDomainAsync(string vmId, string verb, Func<LibvirtDomain, Task> action, CancellationToken cancellationToken)
    {
        using var d = await FindAsync(vmId, cancellationToken).ConfigureAwait(false)
            ?? throw new HypervisorException($"VM {vmId} has no libvirt domain on {_uri}.");
        try
        {
            await action(d).ConfigureAwait(false);
        }
        catch (VirtualizationException ex)
        {
            throw new HypervisorException($"libvirt could not {verb} VM {vmId}: {ex.Message}", ex);
        }
    }
}
