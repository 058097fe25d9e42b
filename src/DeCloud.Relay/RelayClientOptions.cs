namespace DeCloud.Relay;

/// <summary>Settings of a <see cref="RelayClient"/>. Validated when the client starts.</summary>
public sealed class RelayClientOptions
{
    /// <summary>The relay's host name or address.</summary>
    public string ServerHost { get; set; } = string.Empty;

    /// <summary>The relay's control port. Default 7835.</summary>
    public int ServerPort { get; set; } = 7835;

    /// <summary>This node's id, as the relay's authenticator knows it.</summary>
    public string NodeId { get; set; } = string.Empty;

    /// <summary>Use TLS to the relay. Requires <see cref="PinnedCertificateSha256"/>.</summary>
    public bool UseTls { get; set; }

    /// <summary>SHA-256 hash (hex) of the relay's certificate; only that certificate is accepted.</summary>
    public string? PinnedCertificateSha256 { get; set; }

    /// <summary>Time allowed to connect and authenticate. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>First reconnect delay; doubles per failure up to <see cref="ReconnectMaxDelay"/>, with ±20 % jitter. Default 500 ms.</summary>
    public TimeSpan ReconnectMinDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Longest reconnect delay. Default 30 s.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Time allowed to connect a forwarded stream to its target. Default 10 s.</summary>
    public TimeSpan TargetConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Interval between keepalive pings. Default 15 s.</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Silence after which the tunnel is declared dead and re-dialled. Default 45 s.</summary>
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(45);

    /// <summary>Most streams the relay may open at once on this node. Default 65536.</summary>
    public int MaxStreams { get; set; } = 65_536;

    /// <summary>Receive window a stream starts with. Default 256 KiB.</summary>
    public int InitialStreamWindow { get; set; } = 256 * 1024;

    /// <summary>Largest receive window a stream grows to. Default 16 MiB.</summary>
    public int MaxStreamWindow { get; set; } = 16 * 1024 * 1024;

    /// <summary>A UDP flow toward a target with no datagram for this long is closed. Default 60 s.</summary>
    public TimeSpan UdpFlowIdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The data path of forwarded TCP streams. Default <see cref="RelayStreamTransport.Automatic"/>: one outbound
    /// connection from the node to the relay per stream (the NAT lets it out, as it lets the tunnel out; bytes flow at
    /// plain TCP speed) when <see cref="UseTls"/> is off, every stream inside the tunnel when it is on (a TLS handshake
    /// per stream would make connection setup slow). Set <see cref="RelayStreamTransport.DedicatedConnection"/> or
    /// <see cref="RelayStreamTransport.Multiplexed"/> to choose. The relay must allow dedicated connections too.
    /// </summary>
    public RelayStreamTransport StreamTransport { get; set; } = RelayStreamTransport.Automatic;

    /// <summary>
    /// On Linux, forward the bytes of plain (non-TLS) dedicated data connections with <c>splice(2)</c>: socket -> kernel
    /// pipe -> socket, never copied into user space (pipes are held only while bytes flow). Falls back to copying by
    /// itself on other platforms, over TLS and where the kernel refuses. Set false to always copy. Default true.
    /// </summary>
    public bool UseZeroCopy { get; set; } = true;

    /// <summary>The data path <see cref="StreamTransport"/> resolves to with these options.</summary>
    internal RelayStreamTransport EffectiveStreamTransport => StreamTransport switch
    {
        RelayStreamTransport.Automatic => UseTls ? RelayStreamTransport.Multiplexed : RelayStreamTransport.DedicatedConnection,
        var chosen => chosen,
    };

    /// <summary>
    /// With dedicated connections, how many data connections the node keeps dialled ahead (TCP and TLS handshakes
    /// done) while streams arrive, so a burst of new connections does not wait for a handshake each. Refilled only
    /// when a stream takes one; 0 dials every data connection on demand. Default 4.
    /// </summary>
    public int DataConnectionPoolSize { get; set; } = 4;

    /// <summary>A warm data connection unused for this long is closed and not replaced. Keep it below the relay's handshake timeout. Default 3 s.</summary>
    public TimeSpan DataConnectionPoolIdleTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid property.</summary>
    public void Validate()
    {
        RelayServerOptions.Check(!string.IsNullOrWhiteSpace(ServerHost), nameof(ServerHost), "must name the relay");
        RelayServerOptions.Check(ServerPort is >= 1 and <= 65535, nameof(ServerPort), $"is {ServerPort}; use 1-65535");
        RelayServerOptions.Check(!string.IsNullOrWhiteSpace(NodeId) && NodeId.Length <= 200, nameof(NodeId), "must be 1-200 characters");
        RelayServerOptions.Check(!UseTls || PinnedCertificateSha256 is { Length: 64 }, nameof(PinnedCertificateSha256), "must be the 64-hex-digit SHA-256 of the relay certificate when UseTls is on");
        RelayServerOptions.Check(ConnectTimeout > TimeSpan.Zero, nameof(ConnectTimeout), "must be positive");
        RelayServerOptions.Check(ReconnectMinDelay > TimeSpan.Zero, nameof(ReconnectMinDelay), "must be positive");
        RelayServerOptions.Check(ReconnectMaxDelay >= ReconnectMinDelay, nameof(ReconnectMaxDelay), $"is {ReconnectMaxDelay}; use at least ReconnectMinDelay ({ReconnectMinDelay})");
        RelayServerOptions.Check(TargetConnectTimeout > TimeSpan.Zero, nameof(TargetConnectTimeout), "must be positive");
        RelayServerOptions.Check(KeepAliveInterval > TimeSpan.Zero, nameof(KeepAliveInterval), "must be positive");
        RelayServerOptions.Check(KeepAliveTimeout > KeepAliveInterval, nameof(KeepAliveTimeout), $"is {KeepAliveTimeout}; use more than KeepAliveInterval ({KeepAliveInterval})");
        RelayServerOptions.Check(MaxStreams > 0, nameof(MaxStreams), "must be positive");
        RelayServerOptions.Check(InitialStreamWindow >= 16 * 1024, nameof(InitialStreamWindow), $"is {InitialStreamWindow}; use at least 16384 bytes");
        RelayServerOptions.Check(MaxStreamWindow >= InitialStreamWindow, nameof(MaxStreamWindow), $"is {MaxStreamWindow}; use at least InitialStreamWindow ({InitialStreamWindow})");
        RelayServerOptions.Check(UdpFlowIdleTimeout > TimeSpan.Zero, nameof(UdpFlowIdleTimeout), "must be positive");
        RelayServerOptions.Check(DataConnectionPoolSize is >= 0 and <= 256, nameof(DataConnectionPoolSize), $"is {DataConnectionPoolSize}; use 0-256");
        RelayServerOptions.Check(DataConnectionPoolIdleTimeout > TimeSpan.Zero, nameof(DataConnectionPoolIdleTimeout), "must be positive");
        RelayServerOptions.Check(Enum.IsDefined(StreamTransport), nameof(StreamTransport), $"is {(int)StreamTransport}; use Automatic, DedicatedConnection or Multiplexed");
    }
}
