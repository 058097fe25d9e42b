using System.Collections.Concurrent;
using System.Xml.Linq;
using DeCloud.Virtualization.DomainXml;
using DeCloud.Virtualization.Libvirt;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Virtualization.Qos;

/// <summary>
/// Applies NIC bandwidth caps to running domains the way the host can: through libvirt
/// (<c>virDomainSetInterfaceParameters</c>) where the kernel has what libvirt needs, else through the
/// <see cref="TcShaper"/> on each tap. tc shaping is removed when the domain stops or is undefined
/// (watched through the connection's lifecycle events).
/// </summary>
public sealed class NicBandwidthEnforcer : IAsyncDisposable
{
    private readonly LibvirtConnection connection;
    private readonly TcShaper shaper;
    private readonly ILogger logger;
    private readonly ConcurrentDictionary<Guid, string[]> shapedTaps = new();
    private readonly ConcurrentDictionary<Task, byte> pendingRemovals = new();

    /// <summary>Creates an enforcer with an explicit <paramref name="mode"/> (see <see cref="CreateAsync"/> to probe the kernel).</summary>
    public NicBandwidthEnforcer(LibvirtConnection connection, BandwidthEnforcement mode, TcShaper? shaper = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        this.connection = connection;
        Mode = mode;
        var factory = loggerFactory ?? NullLoggerFactory.Instance;
        this.shaper = shaper ?? new TcShaper(logger: factory.CreateLogger<TcShaper>());
        logger = factory.CreateLogger<NicBandwidthEnforcer>();
        connection.DomainLifecycle += OnLifecycle;
    }

    /// <summary>Raised with the tap name after its tc shaping was removed because its domain stopped.</summary>
    public event EventHandler<string>? ShapingRemoved;

    /// <summary>How caps are enforced on this host.</summary>
    public BandwidthEnforcement Mode { get; }

    /// <summary>Probes the kernel (<see cref="KernelShapingSupport"/>) and picks libvirt or the tc shaper.</summary>
    public static async Task<NicBandwidthEnforcer> CreateAsync(LibvirtConnection connection, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var support = await KernelShapingSupport.ProbeAsync(cancellationToken).ConfigureAwait(false);
        if (!support.LibvirtBandwidth && !support.TcShaper)
        {
            throw new ShapingException("probe", 1, $"this kernel can enforce no bandwidth cap: missing {support.Missing}");
        }

        var enforcer = new NicBandwidthEnforcer(connection, support.PreferredEnforcement, loggerFactory: loggerFactory);
        Log.EnforcementChosen(enforcer.logger, enforcer.Mode.ToString(), support.Missing.Length == 0 ? "kernel has everything" : "missing " + support.Missing);
        return enforcer;
    }

    /// <summary>The host-side tap names of a running domain's NICs, from its live XML.</summary>
    public static IReadOnlyList<string> GetTapDevices(string liveXml)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(liveXml);
        return XDocument.Parse(liveXml).Descendants("interface")
            .Select(i => i.Element("target")?.Attribute("dev")?.Value)
            .Where(d => !string.IsNullOrEmpty(d))
            .Select(d => d!)
            .ToArray();
    }

    /// <summary>Caps every NIC of the running <paramref name="domain"/>: <paramref name="towardsGuest"/> inbound, <paramref name="fromGuest"/> outbound.</summary>
    public async Task ApplyAsync(LibvirtDomain domain, BandwidthLimit towardsGuest, BandwidthLimit fromGuest, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(domain);
        towardsGuest.Validate();
        fromGuest.Validate();
        var taps = GetTapDevices(await domain.GetXmlAsync(cancellationToken: cancellationToken).ConfigureAwait(false));
        if (Mode == BandwidthEnforcement.Libvirt)
        {
            var bandwidth = new InterfaceBandwidth(towardsGuest.ToInterfaceRate(), fromGuest.ToInterfaceRate());
            foreach (var tap in taps)
            {
                await domain.SetInterfaceBandwidthAsync(tap, bandwidth, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        shapedTaps[domain.Uuid] = [.. taps];
        foreach (var tap in taps)
        {
            await shaper.ApplyAsync(tap, towardsGuest, fromGuest, cancellationToken).ConfigureAwait(false);
        }

        // The domain may have stopped while we shaped; then the stop event found nothing to remove yet.
        bool stillRunning;
        try
        {
            using var current = await connection.LookupByUuidAsync(domain.Uuid, cancellationToken).ConfigureAwait(false);
            stillRunning = current.IsActive();
        }
        catch (LibvirtException ex) when (ex.IsDomainNotFound)
        {
            stillRunning = false;
        }

        if (!stillRunning)
        {
            await RemoveAsync(domain.Uuid).ConfigureAwait(false);
        }
    }

    /// <summary>Waits for removals in flight and stops watching events.</summary>
    public async ValueTask DisposeAsync()
    {
        connection.DomainLifecycle -= OnLifecycle;
        await Task.WhenAll(pendingRemovals.Keys).ConfigureAwait(false);
    }

    private void OnLifecycle(object? sender, DomainLifecycleEventArgs e)
    {
        if (e.Kind is not (DomainLifecycleEventKind.Stopped or DomainLifecycleEventKind.Undefined or DomainLifecycleEventKind.Crashed)
            || !shapedTaps.ContainsKey(e.DomainUuid))
        {
            return;
        }

        var removal = RemoveAsync(e.DomainUuid);
        pendingRemovals.TryAdd(removal, 0);
        _ = removal.ContinueWith(t => pendingRemovals.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task RemoveAsync(Guid uuid)
    {
        if (!shapedTaps.TryRemove(uuid, out var taps))
        {
            return;
        }

        foreach (var tap in taps)
        {
            try
            {
                await shaper.RemoveAsync(tap, CancellationToken.None).ConfigureAwait(false);
                ShapingRemoved?.Invoke(this, tap);
            }
            catch (ShapingException ex)
            {
                Log.RemoveFailed(logger, tap, ex);
            }
        }
    }
}

internal static partial class Log
{
    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Could not remove the shaping of {Device}")]
    public static partial void RemoveFailed(ILogger logger, string device, Exception exception);
}
