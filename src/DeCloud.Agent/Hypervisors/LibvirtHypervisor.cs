using DeCloud.Core.Model;
using DeCloud.Protocol.V1;
using DeCloud.Virtualization;
using DeCloud.Virtualization.DomainXml;
using DeCloud.Virtualization.Libvirt;
using DeCloud.Virtualization.Qos;
using Microsoft.Extensions.Logging;

namespace DeCloud.Agent.Hypervisors;

/// <summary>
/// VMs as libvirt domains through DeCloud.Virtualization. A VM's domain is named <c>decloud-&lt;vm id&gt;</c>
/// and its UUID is the VM id, so the agent finds it again after a restart. The XML comes from
/// <see cref="DomainXmlWriter"/>: one virtio NIC on the configured network (tap <c>dc&lt;12 hex of the id&gt;</c>) with
/// its bandwidth tier, and the quality tier's <c>&lt;cputune&gt;</c>. With the in-process test driver (<c>test:///...</c>)
/// the same XML is defined as <c>type='test'</c> (the driver keeps cputune and interface parameters).
/// On a real host, caps go where the kernel allows: libvirt's <c>&lt;bandwidth&gt;</c>, or the tc shaper on the
/// tap (<see cref="NicBandwidthEnforcer"/> probes once), re-applied after every start.
/// </summary>
internal sealed class LibvirtHypervisor : IHypervisor
{
    private const string Prefix = "decloud-";
    private readonly LibvirtConnection _connection;
    private readonly bool _testDriver;
    private readonly string _uri;
    private readonly NetworkAttachment _attachment;
    private readonly string _network;
    private readonly ILoggerFactory? _loggerFactory;
    private readonly SemaphoreSlim _enforcerGate = new(1, 1);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, BandwidthLimit> _limits = new(StringComparer.Ordinal);
    private NicBandwidthEnforcer? _enforcer;

    public LibvirtHypervisor(string uri, ILoggerFactory? loggerFactory, string network = "default", bool bridge = false)
    {
        _uri = uri;
        _testDriver = uri.StartsWith("test:", StringComparison.Ordinal);
        _network = network;
        _attachment = bridge ? NetworkAttachment.Bridge : NetworkAttachment.Network;
        _loggerFactory = loggerFactory;
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

    /// <summary>The host-side tap of a VM's NIC (at most 15 characters, unique per VM).</summary>
    public static string TapOf(string vmId) => "dc" + VmId.Parse(vmId).Value.ToString("N")[..12];

    /// <summary>The domain XML for <paramref name="spec"/>: NIC with the bandwidth tier, cputune of the quality tier.</summary>
    internal static string RenderXml(CreateVm spec, bool testDriver, string network, NetworkAttachment attachment, BandwidthEnforcement enforcement)
    {
        var r = spec.Resources ?? new Capacity { ComputePoints = 1, MemoryMib = 256 };
        var limit = VmTiers.BandwidthOf(spec.BandwidthTier, spec.BandwidthBytesPerSecond);
        var xml = DomainXmlWriter.Render(
            new DomainDefinition
            {
                Name = Prefix + spec.VmId,
                Uuid = VmId.Parse(spec.VmId).Value,
                Hypervisor = HypervisorKind.Qemu,
                VirtualCpus = Math.Max(1, r.ComputePoints),
                MemoryMiB = r.MemoryMib,
                CpuShare = VmTiers.CpuShareOf(spec.QualityTier),
                NetworkInterfaces =
                [
                    new NetworkInterfaceDefinition { Attachment = attachment, Source = network, TargetDevice = TapOf(spec.VmId), Inbound = limit, Outbound = limit },
                ],
            },
            enforcement);

        // The test driver defines only type='test' domains; everything else in the XML it accepts and keeps.
        return testDriver ? xml.Replace("<domain type=\"qemu\">", "<domain type=\"test\">", StringComparison.Ordinal) : xml;
    }

    public async Task CreateAsync(CreateVm spec, bool start, CancellationToken cancellationToken)
    {
        var limit = VmTiers.BandwidthOf(spec.BandwidthTier, spec.BandwidthBytesPerSecond);
        var domain = await FindAsync(spec.VmId, cancellationToken).ConfigureAwait(false);
        try
        {
            if (domain is null)
            {
                var enforcement = await EnforcementAsync(cancellationToken).ConfigureAwait(false);
                var xml = RenderXml(spec, _testDriver, _network, _attachment, enforcement);
                domain = await _connection.DefineAsync(xml, cancellationToken).ConfigureAwait(false);
            }

            _limits[spec.VmId] = limit;
            if (start && !domain.IsActive())
            {
                await domain.StartAsync(cancellationToken).ConfigureAwait(false);
                await ShapeAfterStartAsync(domain, spec.VmId, cancellationToken).ConfigureAwait(false);
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
                await ShapeAfterStartAsync(d, vmId, cancellationToken).ConfigureAwait(false);
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

    /// <summary>
    /// Changes the NIC cap: live on a running domain and in the persistent definition, as two calls (the test
    /// driver refuses both flags at once). Where the tc shaper enforces caps, the tap is re-shaped instead and the
    /// agent's stored spec carries the tier into the next start.
    /// </summary>
    public Task SetBandwidthAsync(string vmId, BandwidthLimit limit, CancellationToken cancellationToken) =>
        WithDomainAsync(vmId, "set bandwidth on", async d =>
        {
            _limits[vmId] = limit;
            var enforcement = await EnforcementAsync(cancellationToken).ConfigureAwait(false);
            if (enforcement == BandwidthEnforcement.TcShaper)
            {
                await ShapeAfterStartAsync(d, vmId, cancellationToken).ConfigureAwait(false);
                return;
            }

            var rate = limit.ToInterfaceRate();
            var bandwidth = new InterfaceBandwidth(rate, rate);
            var tap = TapOf(vmId);
            if (d.IsActive())
            {
                await d.SetInterfaceBandwidthAsync(tap, bandwidth, live: true, persistent: false, cancellationToken).ConfigureAwait(false);
            }

            await d.SetInterfaceBandwidthAsync(tap, bandwidth, live: false, persistent: true, cancellationToken).ConfigureAwait(false);
        }, cancellationToken);

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

    public async ValueTask DisposeAsync()
    {
        if (_enforcer is not null)
        {
            await _enforcer.DisposeAsync().ConfigureAwait(false);
        }

        _enforcerGate.Dispose();
        await _connection.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>libvirt's own bandwidth on the test driver; on a real host whatever the kernel probe allows (once).</summary>
    private async Task<BandwidthEnforcement> EnforcementAsync(CancellationToken cancellationToken)
    {
        if (_testDriver)
        {
            return BandwidthEnforcement.Libvirt;
        }

        await _enforcerGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _enforcer ??= await NicBandwidthEnforcer.CreateAsync(_connection, _loggerFactory, cancellationToken).ConfigureAwait(false);
            return _enforcer.Mode;
        }
        catch (ShapingException ex)
        {
            throw new HypervisorException($"no bandwidth cap can be enforced on this host: {ex.Message}", ex);
        }
        finally
        {
            _enforcerGate.Release();
        }
    }

    /// <summary>With the tc shaper, a started domain's tap gets its tier (libvirt's own caps come from the XML).</summary>
    private async Task ShapeAfterStartAsync(LibvirtDomain domain, string vmId, CancellationToken cancellationToken)
    {
        if (_testDriver || !_limits.TryGetValue(vmId, out var limit) || await EnforcementAsync(cancellationToken).ConfigureAwait(false) != BandwidthEnforcement.TcShaper)
        {
            return;
        }

        try
        {
            await _enforcer!.ApplyAsync(domain, limit, limit, cancellationToken).ConfigureAwait(false);
        }
        catch (ShapingException ex)
        {
            throw new HypervisorException($"could not shape VM {vmId} to {limit}: {ex.Message}", ex);
        }
    }

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
