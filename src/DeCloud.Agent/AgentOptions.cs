namespace DeCloud.Agent;

/// <summary>Settings of the reference node agent (configuration section <c>Agent</c>). Validated at start.</summary>
public sealed class AgentOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "Agent";

    /// <summary>The orchestrator's address, e.g. <c>http://127.0.0.1:5000</c>. Required.</summary>
    public string OrchestratorUrl { get; set; } = string.Empty;

    /// <summary>Folder for the agent's SQLite state (<c>agent.db</c>). Created if missing.</summary>
    public string DataDirectory { get; set; } = "agent-data";

    /// <summary>A file holding the operator wallet's private key (64 hex characters, optional 0x). Required unless <see cref="WalletPrivateKey"/> is set.</summary>
    public string? WalletKeyFile { get; set; }

    /// <summary>The operator wallet's private key in hex (prefer <see cref="WalletKeyFile"/>).</summary>
    public string? WalletPrivateKey { get; set; }

    /// <summary>The machine id; default: the contents of <c>/etc/machine-id</c>.</summary>
    public string? MachineId { get; set; }

    /// <summary>The node's region label. Default <c>default</c>.</summary>
    public string Region { get; set; } = "default";

    /// <summary>Tags advertised to the scheduler (e.g. <c>ssd</c>).</summary>
    public IList<string> Tags { get; } = [];

    /// <summary>True when the node cannot accept inbound connections; its public ports then go through a relay.</summary>
    public bool BehindNat { get; set; }

    /// <summary>The address clients use to reach this node's public ports (public nodes). Default <c>127.0.0.1</c>.</summary>
    public string PublicHost { get; set; } = "127.0.0.1";

    /// <summary>
    /// The TCP port at <see cref="PublicHost"/> where clients reach a public node (its SSH gateway by default);
    /// registered with the host as the node's public endpoint <c>host:port</c>. Default 22.
    /// </summary>
    public int PublicPort { get; set; } = 22;

    /// <summary>The operator's prices, sent with every registration (optional).</summary>
    public AgentPricingOptions Pricing { get; } = new();

    /// <summary>
    /// How a public node forwards its public ports: <c>auto</c> (kernel DNAT through iptables when running as root with
    /// iptables installed, else the user-space forwarder), <c>dnat</c> (always kernel DNAT; fails when iptables fails) or
    /// <c>userspace</c> (the agent copies bytes itself; no root needed). Loopback targets always use user space in
    /// <c>auto</c>. Default <c>auto</c>.
    /// </summary>
    public string PortForwarding { get; set; } = "auto";

    /// <summary>The iptables command line for kernel DNAT, split on spaces. Default <c>iptables -w</c>.</summary>
    public string DnatIptablesCommand { get; set; } = "iptables -w";

    /// <summary>Prefix of the iptables chains the agent owns (<c>PREFIX-DNAT</c>, <c>PREFIX-FWD</c>). Default <c>DCA</c>.</summary>
    public string DnatChainPrefix { get; set; } = "DCA";

    /// <summary>Only traffic to this IPv4 address is forwarded by DNAT; null: any local address.</summary>
    public string? DnatPublicAddress { get; set; }

    /// <summary>
    /// Which hypervisor runs the VMs: <c>libvirt</c> (through DeCloud.Virtualization, <see cref="LibvirtUri"/>)
    /// or <c>simulated</c> (in memory; load tests and machines without libvirt). Default <c>libvirt</c>.
    /// </summary>
    public string Hypervisor { get; set; } = "libvirt";

    /// <summary>The libvirt connection URI. Default <c>test:///default</c> (libvirt's in-process test driver).</summary>
    public string LibvirtUri { get; set; } = "test:///default";

    /// <summary>The libvirt network every VM's NIC joins (or the host bridge, with <see cref="VmBridge"/>). Default <c>default</c> (libvirt's NAT network).</summary>
    public string VmNetwork { get; set; } = "default";

    /// <summary>True when <see cref="VmNetwork"/> names an existing host bridge rather than a libvirt network.</summary>
    public bool VmBridge { get; set; }

    /// <summary>A folder on a Btrfs filesystem holding VM volumes (subvolumes); enables the storage commands. Optional.</summary>
    public string? StorageRoot { get; set; }

    /// <summary>A folder on a second Btrfs filesystem receiving backups (needs <see cref="StorageRoot"/>). Optional.</summary>
    public string? BackupRoot { get; set; }

    /// <summary>Retention of local backup snapshots, btrbk syntax. Default <c>24h 7d</c>.</summary>
    public string BackupRetention { get; set; } = "24h 7d";

    /// <summary>Retention on the backup target, btrbk syntax. Default <c>24h 14d 4w 6m</c>.</summary>
    public string BackupTargetRetention { get; set; } = "24h 14d 4w 6m";

    /// <summary>
    /// The TCP port of the volume receiver (destination side of volume moves, on <see cref="PublicHost"/>); 0 picks a
    /// free one, -1 (default) runs none. Needs <see cref="StorageRoot"/>. The receiver does not authenticate senders:
    /// expose it only on a network the operator trusts (a private interface or a firewall rule).
    /// </summary>
    public int MoveListenPort { get; set; } = -1;

    /// <summary>Compute points to advertise; 0 measures them with a CPU benchmark at first start. Default 0.</summary>
    public int ComputePoints { get; set; }

    /// <summary>How long the first-start CPU benchmark runs. Default 3 s.</summary>
    public TimeSpan BenchmarkDuration { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>The benchmark: <c>auto</c> (sysbench if installed, else built in), <c>sysbench</c> or <c>builtin</c>.</summary>
    public string Benchmark { get; set; } = "auto";

    /// <summary>Memory to offer in MiB; 0 offers what <c>/proc/meminfo</c> reports. Default 0.</summary>
    public long MemoryMiB { get; set; }

    /// <summary>Storage to offer in GiB. Default 100.</summary>
    public long StorageGiB { get; set; } = 100;

    /// <summary>First reconnect delay after the stream breaks; doubles up to <see cref="MaxReconnectDelay"/>. Default 500 ms.</summary>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The longest reconnect delay. Default 15 s.</summary>
    public TimeSpan MaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>True when this node also runs the relay role for NAT'd nodes.</summary>
    public bool RelayCapable { get; set; }

    /// <summary>The TCP port of this node's relay control listener (with <see cref="RelayCapable"/>); 0 picks a free one. Default 7835.</summary>
    public int RelayControlPort { get; set; } = 7835;

    /// <summary>Checks every setting; returns the problems found, each naming its property.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!Uri.TryCreate(OrchestratorUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            errors.Add($"{nameof(OrchestratorUrl)} '{OrchestratorUrl}' must be an absolute http(s) URL, e.g. http://127.0.0.1:5000.");
        }

        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            errors.Add($"{nameof(DataDirectory)} must name a folder for the agent's state.");
        }

        if (string.IsNullOrWhiteSpace(WalletKeyFile) && string.IsNullOrWhiteSpace(WalletPrivateKey))
        {
            errors.Add($"{nameof(WalletKeyFile)} must name a file with the operator wallet's private key.");
        }

        if (Hypervisor is not ("libvirt" or "simulated"))
        {
            errors.Add($"{nameof(Hypervisor)} '{Hypervisor}' must be libvirt or simulated.");
        }

        if (string.IsNullOrWhiteSpace(VmNetwork) || VmNetwork.Length > 64 || VmNetwork.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.')))
        {
            errors.Add($"{nameof(VmNetwork)} '{VmNetwork}' must be a libvirt network or bridge name (letters, digits, '-', '_', '.').");
        }

        if (PortForwarding is not ("auto" or "dnat" or "userspace"))
        {
            errors.Add($"{nameof(PortForwarding)} '{PortForwarding}' must be auto, dnat or userspace.");
        }

        if (string.IsNullOrWhiteSpace(DnatIptablesCommand))
        {
            errors.Add($"{nameof(DnatIptablesCommand)} must name the iptables executable.");
        }

        if (string.IsNullOrEmpty(DnatChainPrefix) || DnatChainPrefix.Length > 20 || DnatChainPrefix.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_')))
        {
            errors.Add($"{nameof(DnatChainPrefix)} '{DnatChainPrefix}' must be 1-20 letters, digits, '-' or '_'.");
        }

        if (DnatPublicAddress is not null && (!System.Net.IPAddress.TryParse(DnatPublicAddress, out var dnatAddress) || dnatAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork))
        {
            errors.Add($"{nameof(DnatPublicAddress)} '{DnatPublicAddress}' must be an IPv4 address.");
        }

        if (BackupRoot is not null && string.IsNullOrWhiteSpace(StorageRoot))
        {
            errors.Add($"{nameof(BackupRoot)} needs {nameof(StorageRoot)} (the volumes to back up).");
        }

        foreach (var (name, text) in new[] { (nameof(BackupRetention), BackupRetention), (nameof(BackupTargetRetention), BackupTargetRetention) })
        {
            if (!DeCloud.Storage.Backups.RetentionPolicy.TryParse(text, out _, out var why))
            {
                errors.Add($"{name} '{text}' is not a retention policy: {why}");
            }
        }

        if (Benchmark is not ("auto" or "sysbench" or "builtin"))
        {
            errors.Add($"{nameof(Benchmark)} '{Benchmark}' must be auto, sysbench or builtin.");
        }

        if (ComputePoints < 0 || MemoryMiB < 0 || StorageGiB < 0)
        {
            errors.Add($"{nameof(ComputePoints)}, {nameof(MemoryMiB)} and {nameof(StorageGiB)} must not be negative.");
        }

        if (BenchmarkDuration < TimeSpan.FromMilliseconds(100) || BenchmarkDuration > TimeSpan.FromMinutes(5))
        {
            errors.Add($"{nameof(BenchmarkDuration)} is {BenchmarkDuration}; it must be between 100 ms and 5 min.");
        }

        if (ReconnectDelay <= TimeSpan.Zero || MaxReconnectDelay < ReconnectDelay)
        {
            errors.Add($"{nameof(ReconnectDelay)} must be positive and at most {nameof(MaxReconnectDelay)}.");
        }

        if (RelayControlPort is < 0 or > 65535)
        {
            errors.Add($"{nameof(RelayControlPort)} {RelayControlPort} must be 0-65535.");
        }

        if (MoveListenPort is < -1 or > 65535)
        {
            errors.Add($"{nameof(MoveListenPort)} {MoveListenPort} must be -1 (none), 0 (any) or 1-65535.");
        }

        if (PublicPort is < 1 or > 65535)
        {
            errors.Add($"{nameof(PublicPort)} {PublicPort} must be 1-65535.");
        }

        Pricing.Validate(errors);

        if (RelayCapable && BehindNat)
        {
            errors.Add($"{nameof(RelayCapable)} needs a public node; {nameof(BehindNat)} is true.");
        }

        return errors;
    }
}
