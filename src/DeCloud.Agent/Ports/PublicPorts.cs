using System.Globalization;
using System.Net;
using System.Net.Sockets;
using DeCloud.Agent.State;
using DeCloud.Relay;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Agent.Ports;

/// <summary>How a public node's port reaches its target.</summary>
internal enum PortPath
{
    /// <summary>Kernel DNAT rules (DeCloud.Relay's <see cref="DirectDnatForwarder"/>): no byte passes through the agent.</summary>
    Dnat,

    /// <summary>The agent's user-space <see cref="TcpPortForwarder"/> (fallback: no root, no iptables, or a loopback target).</summary>
    UserSpace,
}

/// <summary>
/// A public node's open ports. Kernel DNAT through DeCloud.Relay's direct mode where iptables can be used
/// (<see cref="AgentOptions.PortForwarding"/> <c>auto</c> as root with iptables, or <c>dnat</c>): rules live in chains
/// the agent owns (<c>&lt;DnatChainPrefix&gt;-DNAT</c>, <c>-FWD</c>), are stored in <c>direct.db</c> and rebuilt (flushed and
/// re-applied, never duplicated) at start. The user-space forwarder stays as the documented fallback: without root,
/// without iptables, or for a loopback target, which DNAT cannot reach from outside without <c>route_localnet</c>.
/// The agent's own state (its <c>ports</c> table) is the truth; reconciliation makes the kernel match it.
/// </summary>
internal sealed partial class PublicPorts : IAsyncDisposable
{
    private readonly AgentOptions _options;
    private readonly TcpPortForwarder _userSpace;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly bool _iptablesUsable;
    private DirectDnatForwarder? _dnat;

    public PublicPorts(IOptions<AgentOptions> options, TcpPortForwarder userSpace, ILoggerFactory loggerFactory, TimeProvider time)
    {
        _options = options.Value;
        _userSpace = userSpace;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<PublicPorts>();
        _time = time;
        _iptablesUsable = _options.PortForwarding switch
        {
            "dnat" => true,
            "userspace" => false,
            _ => Environment.IsPrivilegedProcess && FindExecutable(IptablesCommand[0]),
        };
    }

    /// <summary>True when non-loopback targets get kernel DNAT rules.</summary>
    public bool UsesDnat => _iptablesUsable;

    private string[] IptablesCommand => _options.DnatIptablesCommand.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private string DirectDatabase => Path.Combine(_options.DataDirectory, "direct.db");

    /// <summary>True when <paramref name="publicPort"/> is served (a user-space listener or a DNAT rule).</summary>
    public bool IsOpen(int publicPort) =>
        _userSpace.IsOpen(publicPort) || (_dnat is { } d && d.Mappings.Any(m => m.PublicPort == publicPort));

    /// <summary>Which path <paramref name="port"/> takes; throws <see cref="ArgumentException"/> when the configured path cannot serve it.</summary>
    public PortPath PathFor(LocalPort port)
    {
        var ipv4 = IPAddress.TryParse(port.TargetHost, out var target) && target.AddressFamily == AddressFamily.InterNetwork;
        if (_iptablesUsable && ipv4 && !IPAddress.IsLoopback(target!))
        {
            return PortPath.Dnat;
        }

        if (_options.PortForwarding == "dnat")
        {
            throw new ArgumentException($"target '{port.TargetHost}' cannot be reached by kernel DNAT: it needs a non-loopback IPv4 address (PortForwarding is dnat).");
        }

        return PortPath.UserSpace;
    }

    /// <summary>Opens <paramref name="port"/> (idempotent: an open port with the same target stays as it is).</summary>
    public async Task<PortPath> OpenAsync(LocalPort port, CancellationToken cancellationToken)
    {
        var path = PathFor(port);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (path == PortPath.UserSpace)
            {
                _userSpace.Open(port.PublicPort, port.TargetHost, port.TargetPort);
                return path;
            }

            var dnat = await DnatAsync(cancellationToken).ConfigureAwait(false);
            await MapAsync(dnat, port, cancellationToken).ConfigureAwait(false);
            return path;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Closes a public port on whichever path carries it; nothing happens when it is not open.</summary>
    public async Task CloseAsync(int publicPort, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _userSpace.Close(publicPort);
            if (_dnat is not null || File.Exists(DirectDatabase))
            {
                var dnat = await DnatAsync(cancellationToken).ConfigureAwait(false);
                await dnat.RemoveMappingAsync(NameOf(publicPort), cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// At start: makes the kernel and listeners match <paramref name="ports"/> (the agent's state). The DNAT chains are
    /// rebuilt from their store, mappings the state no longer has are removed, missing ones re-added.
    /// Returns the number of ports on each path; a port that cannot be restored is logged and skipped.
    /// </summary>
    public async Task<(int Dnat, int UserSpace)> ReconcileAsync(IReadOnlyList<LocalPort> ports, CancellationToken cancellationToken)
    {
        int dnatCount = 0, userSpaceCount = 0;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            DirectDnatForwarder? dnat = null;
            if (_iptablesUsable && (File.Exists(DirectDatabase) || ports.Any(p => SafePath(p) == PortPath.Dnat)))
            {
                dnat = await DnatAsync(cancellationToken).ConfigureAwait(false);
                var wanted = ports.Where(p => SafePath(p) == PortPath.Dnat).Select(p => NameOf(p.PublicPort)).ToHashSet(StringComparer.Ordinal);
                foreach (var stale in dnat.Mappings.Where(m => !wanted.Contains(m.Name)).ToList())
                {
                    await dnat.RemoveMappingAsync(stale.Name, cancellationToken).ConfigureAwait(false);
                }
            }

            foreach (var p in ports)
            {
                try
                {
                    if (SafePath(p) == PortPath.Dnat && dnat is not null)
                    {
                        if (!dnat.Mappings.Any(m => m.Name == NameOf(p.PublicPort) && m.PublicPort == p.PublicPort && m.TargetHost == p.TargetHost && m.TargetPort == p.TargetPort))
                        {
                            await MapAsync(dnat, p, cancellationToken).ConfigureAwait(false);
                        }

                        dnatCount++;
                    }
                    else if (SafePath(p) == PortPath.UserSpace)
                    {
                        _userSpace.Open(p.PublicPort, p.TargetHost, p.TargetPort);
                        userSpaceCount++;
                    }
                }
                catch (Exception ex) when (ex is SocketException or RelayException or ArgumentException)
                {
                    Log.PortNotRestored(_logger, p.PublicPort, p.VmId, ex.Message);
                }
            }
        }
        finally
        {
            _gate.Release();
        }

        return (dnatCount, userSpaceCount);
    }

    public async ValueTask DisposeAsync()
    {
        if (_dnat is not null)
        {
            await _dnat.DisposeAsync().ConfigureAwait(false);
        }

        _gate.Dispose();
    }

    internal static string NameOf(int publicPort) => "port-" + publicPort.ToString(CultureInfo.InvariantCulture);

    private static async Task MapAsync(DirectDnatForwarder dnat, LocalPort port, CancellationToken cancellationToken)
    {
        var mapping = await dnat.AddMappingAsync(
            new RelayMappingRequest(RelayProtocol.Tcp, port.TargetHost, port.TargetPort) { Name = NameOf(port.PublicPort), PreferredPublicPort = port.PublicPort },
            cancellationToken).ConfigureAwait(false);
        if (mapping.PublicPort != port.PublicPort)
        {
            // The orchestrator chose the port; another mapping holds it here. Undo and report instead of serving a different port.
            await dnat.RemoveMappingAsync(mapping.Name, cancellationToken).ConfigureAwait(false);
            throw new SocketException((int)SocketError.AddressAlreadyInUse, $"public port {port.PublicPort} is already mapped on this node.");
        }
    }

    private PortPath? SafePath(LocalPort port)
    {
        try
        {
            return PathFor(port);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private async Task<DirectDnatForwarder> DnatAsync(CancellationToken cancellationToken)
    {
        if (_dnat is not null)
        {
            return _dnat;
        }

        var o = new DirectModeOptions
        {
            ChainPrefix = _options.DnatChainPrefix,
            DatabasePath = DirectDatabase,
            PortRangeStart = 1024,
            PortRangeEnd = 65535,
            PublicAddress = IPAddress.TryParse(_options.DnatPublicAddress, out var a) ? a : null,
            PublicHost = _options.PublicHost,
        };
        o.IptablesCommand.Clear();
        foreach (var part in IptablesCommand)
        {
            o.IptablesCommand.Add(part);
        }

        Directory.CreateDirectory(_options.DataDirectory);
        var dnat = new DirectDnatForwarder(o, _loggerFactory, _time);
        try
        {
            await dnat.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await dnat.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        Log.DnatStarted(_logger, o.ChainPrefix, dnat.Mappings.Count);
        return _dnat = dnat;
    }

    private static bool FindExecutable(string name) =>
        Path.IsPathRooted(name) ? File.Exists(name)
            : (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':').Any(d => File.Exists(Path.Combine(d, name)));

    private static partial class Log
    {
        [LoggerMessage(30, LogLevel.Information, "Kernel DNAT for public ports in chains {Prefix}-DNAT/{Prefix}-FWD; {Count} stored rules re-applied.")]
        public static partial void DnatStarted(ILogger logger, string prefix, int count);

        [LoggerMessage(31, LogLevel.Warning, "Public port {Port} of VM {VmId} could not be restored: {Error}")]
        public static partial void PortNotRestored(ILogger logger, int port, string vmId, string error);
    }
}
