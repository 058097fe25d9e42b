using System.Net;
using DeCloud.Relay.Direct;
using DeCloud.Relay.Ports;
using DeCloud.Relay.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Relay;

/// <summary>
/// Direct mode for nodes with a public address: the same mapping API as the relay, applied as kernel DNAT rules
/// in chains this forwarder owns, so no byte passes a user-space pump. Mappings are stored (SQLite) and the
/// chains are rebuilt from the store at start, so rules survive restarts and drift is repaired.
/// Requires root (CAP_NET_ADMIN) and IP forwarding for targets on other interfaces.
/// </summary>
public sealed partial class DirectDnatForwarder : IAsyncDisposable
{
    private const string NodeId = "direct";
    private readonly DirectModeOptions _options;
    private readonly IIptables _iptables;
    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly Dictionary<string, StoredMapping> _mappings = new(StringComparer.Ordinal);
    private PortAllocator? _allocator;
    private MappingStore? _store;

    /// <summary>Creates a forwarder; call <see cref="StartAsync"/> to install chains and re-apply stored mappings.</summary>
    public DirectDnatForwarder(DirectModeOptions options, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
        : this(options, new ProcessIptables(options?.IptablesCommand.ToArray() ?? []), loggerFactory, timeProvider)
    {
    }

    internal DirectDnatForwarder(DirectModeOptions options, IIptables iptables, ILoggerFactory? loggerFactory, TimeProvider? timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _iptables = iptables;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<DirectDnatForwarder>();
        _timeProvider = timeProvider ?? TimeProvider.System;
    }

    internal string DnatChain => _options.ChainPrefix + "-DNAT";

    internal string ForwardChain => _options.ChainPrefix + "-FWD";

    /// <summary>The mappings applied now.</summary>
    public IReadOnlyList<RelayMapping> Mappings
    {
        get
        {
            lock (_mappings)
            {
                return _mappings.Values.OrderBy(m => m.PublicPort).Select(ToMapping).ToList();
            }
        }
    }

    /// <summary>Creates the chains and jumps if missing, then rebuilds the DNAT rules from the store.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        _options.Validate();
        _allocator = new PortAllocator(_options.PortRangeStart, _options.PortRangeEnd, _options.ExcludedPorts, 65535);
        _store = new MappingStore(_options.DatabasePath);
        await EnsureChainAsync("nat", DnatChain, cancellationToken).ConfigureAwait(false);
        await EnsureJumpAsync("nat", "PREROUTING", DnatChain, cancellationToken).ConfigureAwait(false);
        await EnsureJumpAsync("nat", "OUTPUT", DnatChain, cancellationToken).ConfigureAwait(false);
        await EnsureChainAsync("filter", ForwardChain, cancellationToken).ConfigureAwait(false);
        await EnsureJumpAsync("filter", "FORWARD", ForwardChain, cancellationToken).ConfigureAwait(false);

        // Reconcile: the chains are ours alone, so flush and re-apply exactly what is stored.
        await RunAsync(["-t", "nat", "-F", DnatChain], cancellationToken).ConfigureAwait(false);
        await RunAsync(["-t", "filter", "-F", ForwardChain], cancellationToken).ConfigureAwait(false);
        await RunAsync(["-t", "filter", "-A", ForwardChain, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"], cancellationToken).ConfigureAwait(false);
        foreach (var stored in _store.LoadAll(out _))
        {
            if (stored.NodeId != NodeId || _allocator.TryReserve(NodeId, stored.Protocol, stored.PublicPort) != AllocationStatus.Allocated
                || !IPAddress.TryParse(stored.TargetHost, out _))
            {
                Log.DirectDropped(_logger, stored.Name, stored.PublicPort);
                _store.Delete(stored.NodeId, stored.Name);
                continue;
            }

            await ApplyAsync("-A", stored, cancellationToken).ConfigureAwait(false);
            lock (_mappings)
            {
                _mappings[stored.Name] = stored;
            }
        }
    }

    /// <summary>Publishes a mapping as DNAT rules. The target must be an IPv4 address (a VM's private address).</summary>
    public async Task<RelayMapping> AddMappingAsync(RelayMappingRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        if (!IPAddress.TryParse(request.TargetHost, out var target) || target.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"TargetHost '{request.TargetHost}' must be an IPv4 address in direct mode.", nameof(request));
        }

        var allocator = _allocator ?? throw new InvalidOperationException("Call StartAsync first.");
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            StoredMapping? existing;
            lock (_mappings)
            {
                _mappings.TryGetValue(request.EffectiveName, out existing);
            }

            if (existing is not null)
            {
                await RemoveCoreAsync(existing).ConfigureAwait(false);
            }

            var preferred = request.PreferredPublicPort != 0 ? request.PreferredPublicPort : existing?.PublicPort ?? 0;
            var status = allocator.TryAllocate(NodeId, request.Protocol, preferred, out var port);
            if (status != AllocationStatus.Allocated)
            {
                throw new RelayMappingException($"No free port for '{request.EffectiveName}' in {_options.PortRangeStart}-{_options.PortRangeEnd}.");
            }

            var record = new StoredMapping(NodeId, request.EffectiveName, request.Protocol, port, request.TargetHost, request.TargetPort,
                false, 0, _timeProvider.GetUtcNow());
            try
            {
                await ApplyAsync("-A", record, cancellationToken).ConfigureAwait(false);
                _store!.Upsert(record);
            }
            catch
            {
                allocator.Release(NodeId, request.Protocol, port);
                await ApplyQuietlyAsync("-D", record).ConfigureAwait(false);
                throw;
            }

            lock (_mappings)
            {
                _mappings[record.Name] = record;
            }

            Log.DirectMapped(_logger, record.Name, port, $"{record.TargetHost}:{record.TargetPort}");
            return ToMapping(record);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Removes a mapping's rules and releases its port; false when there was none.</summary>
    public async Task<bool> RemoveMappingAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            StoredMapping? existing;
            lock (_mappings)
            {
                _mappings.TryGetValue(name, out existing);
            }

            if (existing is null)
            {
                return false;
            }

            await RemoveCoreAsync(existing).ConfigureAwait(false);
            return true;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Deletes this forwarder's chains and jumps (the stored mappings stay; the next start re-applies them).</summary>
    public async Task RemoveChainsAsync(CancellationToken cancellationToken = default)
    {
        foreach (var (table, parent, chain) in new[] { ("nat", "PREROUTING", DnatChain), ("nat", "OUTPUT", DnatChain), ("filter", "FORWARD", ForwardChain) })
        {
            while ((await _iptables.RunAsync(["-t", table, "-D", parent, "-j", chain], cancellationToken).ConfigureAwait(false)).ExitCode == 0)
            {
            }
        }

        foreach (var (table, chain) in new[] { ("nat", DnatChain), ("filter", ForwardChain) })
        {
            await _iptables.RunAsync(["-t", table, "-F", chain], cancellationToken).ConfigureAwait(false);
            await _iptables.RunAsync(["-t", table, "-X", chain], cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Closes the store. The kernel rules stay in place and keep forwarding.</summary>
    public ValueTask DisposeAsync()
    {
        _store?.Dispose();
        _lock.Dispose();
        return ValueTask.CompletedTask;
    }

    internal static IEnumerable<string[]> RuleSpecs(StoredMapping mapping, string dnatChain, IPAddress? publicAddress)
    {
        foreach (var proto in mapping.Protocol switch { RelayProtocol.Tcp => ["tcp"], RelayProtocol.Udp => ["udp"], _ => new[] { "tcp", "udp" } })
        {
            var rule = new List<string> { "-t", "nat", "{op}", dnatChain };
            if (publicAddress is not null)
            {
                rule.AddRange(["-d", publicAddress.ToString()]);
            }

            rule.AddRange(["-p", proto, "--dport", mapping.PublicPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "-m", "comment", "--comment", "dcr:" + mapping.Name,
                "-j", "DNAT", "--to-destination", $"{mapping.TargetHost}:{mapping.TargetPort}"]);
            yield return rule.ToArray();
        }
    }

    private RelayMapping ToMapping(StoredMapping m) =>
        new(m.Name, m.Protocol, _options.PublicHost ?? _options.PublicAddress?.ToString() ?? "0.0.0.0", m.PublicPort, m.TargetHost, m.TargetPort);

    private async Task RemoveCoreAsync(StoredMapping existing)
    {
        _store!.Delete(NodeId, existing.Name);
        await ApplyQuietlyAsync("-D", existing).ConfigureAwait(false);
        _allocator!.Release(NodeId, existing.Protocol, existing.PublicPort);
        lock (_mappings)
        {
            _mappings.Remove(existing.Name);
        }

        Log.DirectUnmapped(_logger, existing.Name, existing.PublicPort);
    }

    private async Task ApplyAsync(string op, StoredMapping mapping, CancellationToken cancellationToken)
    {
        foreach (var spec in RuleSpecs(mapping, DnatChain, _options.PublicAddress))
        {
            await RunAsync(spec.Select(a => a == "{op}" ? op : a).ToArray(), cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task ApplyQuietlyAsync(string op, StoredMapping mapping)
    {
        foreach (var spec in RuleSpecs(mapping, DnatChain, _options.PublicAddress))
        {
            await _iptables.RunAsync(spec.Select(a => a == "{op}" ? op : a).ToArray(), CancellationToken.None).ConfigureAwait(false);
        }
    }

    private async Task EnsureChainAsync(string table, string chain, CancellationToken cancellationToken)
    {
        if ((await _iptables.RunAsync(["-t", table, "-n", "-L", chain], cancellationToken).ConfigureAwait(false)).ExitCode != 0)
        {
            await RunAsync(["-t", table, "-N", chain], cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task EnsureJumpAsync(string table, string parent, string chain, CancellationToken cancellationToken)
    {
        if ((await _iptables.RunAsync(["-t", table, "-C", parent, "-j", chain], cancellationToken).ConfigureAwait(false)).ExitCode != 0)
        {
            await RunAsync(["-t", table, "-I", parent, "1", "-j", chain], cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var (exitCode, error) = await _iptables.RunAsync(arguments, cancellationToken).ConfigureAwait(false);
        if (exitCode != 0)
        {
            throw new RelayException($"iptables {string.Join(' ', arguments)} failed ({exitCode}): {error}");
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Direct mapping '{Name}': public port {Port} -> {Target} (kernel DNAT)")]
        public static partial void DirectMapped(ILogger logger, string name, int port, string target);

        [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Direct mapping '{Name}' removed, port {Port} released")]
        public static partial void DirectUnmapped(ILogger logger, string name, int port);

        [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "Stored direct mapping '{Name}' (port {Port}) dropped at start: port outside the range, taken, or target not an address")]
        public static partial void DirectDropped(ILogger logger, string name, int port);
    }
}
