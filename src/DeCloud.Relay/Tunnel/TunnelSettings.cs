namespace DeCloud.Relay.Tunnel;

/// <summary>Per-tunnel limits shared by both ends.</summary>
internal sealed record TunnelSettings
{
    /// <summary>Receive window a new stream starts with.</summary>
    public int InitialWindow { get; init; } = 256 * 1024;

    /// <summary>Largest receive window a stream may grow to.</summary>
    public int MaxWindow { get; init; } = 16 * 1024 * 1024;

    /// <summary>Most streams open at once on one tunnel.</summary>
    public int MaxStreams { get; init; } = 65_536;

    /// <summary>Interval between keepalive pings.</summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Silence after which the tunnel is declared dead.</summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(45);

    /// <summary>Most control frames queued for processing before the tunnel is closed as flooding.</summary>
    public int MaxQueuedControlFrames { get; init; } = 4096;
}
