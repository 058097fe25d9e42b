namespace DeCloud.Relay;

/// <summary>What a node asks the relay to publish.</summary>
public sealed record RelayMappingRequest
{
    /// <summary>Creates a request for <paramref name="protocol"/> traffic toward <paramref name="targetHost"/>:<paramref name="targetPort"/>.</summary>
    public RelayMappingRequest(RelayProtocol protocol, string targetHost, int targetPort)
    {
        Protocol = protocol;
        TargetHost = targetHost;
        TargetPort = targetPort;
    }

    /// <summary>A stable name for the mapping: the same name gets the same public port after reconnects and restarts. Default "proto:host:port".</summary>
    public string? Name { get; init; }

    /// <summary>TCP, UDP or both.</summary>
    public RelayProtocol Protocol { get; }

    /// <summary>Where the node forwards traffic (a VM's private address, or localhost).</summary>
    public string TargetHost { get; }

    /// <summary>The target's port.</summary>
    public int TargetPort { get; }

    /// <summary>A public port to use if free (0 = any).</summary>
    public int PreferredPublicPort { get; init; }

    /// <summary>Prefix every TCP connection to the target with a PROXY protocol v2 header carrying the real client address.</summary>
    public bool UseProxyProtocol { get; init; }

    /// <summary>Bandwidth limit per direction in bytes per second (0 = the relay's default).</summary>
    public long BandwidthLimitBytesPerSecond { get; init; }

    /// <summary>The effective name.</summary>
    public string EffectiveName => Name ?? $"{Protocol.ToString().ToLowerInvariant()}:{TargetHost}:{TargetPort}";

    internal void Validate()
    {
        RelayServerOptions.Check(Enum.IsDefined(Protocol), nameof(Protocol), $"is {(int)Protocol}; use Tcp, Udp or TcpAndUdp");
        RelayServerOptions.Check(!string.IsNullOrWhiteSpace(TargetHost) && TargetHost.Length <= 255, nameof(TargetHost), "must be a host name or address");
        RelayServerOptions.Check(TargetPort is >= 1 and <= 65535, nameof(TargetPort), $"is {TargetPort}; use 1-65535");
        RelayServerOptions.Check(PreferredPublicPort is >= 0 and <= 65535, nameof(PreferredPublicPort), $"is {PreferredPublicPort}; use 0-65535");
        RelayServerOptions.Check(BandwidthLimitBytesPerSecond >= 0, nameof(BandwidthLimitBytesPerSecond), "must not be negative");
        RelayServerOptions.Check(EffectiveName.Length is > 0 and <= 200, nameof(Name), "must be 1-200 characters");
    }
}

/// <summary>A published mapping: the public port the relay holds for a target.</summary>
/// <param name="Name">The mapping's stable name.</param>
/// <param name="Protocol">TCP, UDP or both.</param>
/// <param name="PublicHost">The relay's public host as the relay reports it.</param>
/// <param name="PublicPort">The public port.</param>
/// <param name="TargetHost">Where the node forwards.</param>
/// <param name="TargetPort">The target port.</param>
public sealed record RelayMapping(string Name, RelayProtocol Protocol, string PublicHost, int PublicPort, string TargetHost, int TargetPort)
{
    /// <summary>The line the sample prints: <c>PUBLIC tcp host:port -> target:port</c>.</summary>
    public override string ToString() =>
        $"PUBLIC {Protocol.ToString().ToLowerInvariant()} {PublicHost}:{PublicPort} -> {TargetHost}:{TargetPort}";
}
