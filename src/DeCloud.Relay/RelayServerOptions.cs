using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace DeCloud.Relay;

/// <summary>Settings of a <see cref="RelayServer"/>. Validated when the server starts.</summary>
public sealed class RelayServerOptions
{
    /// <summary>Where nodes connect their tunnels. Default 0.0.0.0:7835; port 0 picks a free port.</summary>
    public IPEndPoint ControlEndPoint { get; set; } = new(IPAddress.Any, 7835);

    /// <summary>The address public ports are bound on. Default: all IPv4 addresses.</summary>
    public IPAddress PublicAddress { get; set; } = IPAddress.Any;

    /// <summary>The host name or address reported to nodes for their public endpoints (display only). Default: <see cref="PublicAddress"/>.</summary>
    public string? PublicHost { get; set; }

    /// <summary>First public port handed out. Default 40000.</summary>
    public int PortRangeStart { get; set; } = 40000;

    /// <summary>Last public port handed out. Default 65535.</summary>
    public int PortRangeEnd { get; set; } = 65535;

    /// <summary>Ports inside the range that are never handed out.</summary>
    public ICollection<int> ExcludedPorts { get; } = new List<int>();

    /// <summary>Most public ports one node may hold (a TCP+UDP mapping counts once). Default 64.</summary>
    public int MaxPortsPerNode { get; set; } = 64;

    /// <summary>SQLite file holding durable mappings. Null keeps them in memory only (lost on restart).</summary>
    public string? DatabasePath { get; set; }

    /// <summary>Enables TLS on the control endpoint with this certificate (with private key). Nodes pin its SHA-256 hash.</summary>
    public X509Certificate2? Certificate { get; set; }

    /// <summary>Time a node has to complete the TLS and authentication handshake. Default 10 s.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Time the node has to connect a forwarded stream to its target. Default 10 s.</summary>
    public TimeSpan StreamOpenTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Interval between keepalive pings. Default 15 s.</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Silence after which a tunnel is closed. Default 45 s.</summary>
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(45);

    /// <summary>
    /// Most multiplexed streams per tunnel waiting for the node to accept them; further public connections are reset
    /// at once. A node closes its tunnel as flooding when more than 4096 control frames wait for it, so a burst of
    /// connections toward a slow (CPU-starved) node costs those connections, never the tunnel. Default 2048 (1-4096).
    /// </summary>
    public int MaxPendingStreamOpens { get; set; } = 2048;

    /// <summary>Most streams open at once on one tunnel; further public connections are refused. Default 65536.</summary>
    public int MaxStreamsPerTunnel { get; set; } = 65_536;

    /// <summary>Receive window a stream starts with. Default 256 KiB.</summary>
    public int InitialStreamWindow { get; set; } = 256 * 1024;

    /// <summary>Largest receive window a stream grows to on long fat links. Default 16 MiB.</summary>
    public int MaxStreamWindow { get; set; } = 16 * 1024 * 1024;

    /// <summary>A UDP flow with no datagram for this long is closed. Default 60 s.</summary>
    public TimeSpan UdpFlowIdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Most UDP flows per mapping; datagrams from further clients are dropped. Default 4096.</summary>
    public int MaxUdpFlowsPerMapping { get; set; } = 4096;

    /// <summary>Bandwidth cap per mapping and direction in bytes per second applied when a node asks for none or more. 0 = none.</summary>
    public long MaxBandwidthPerMapping { get; set; }

    /// <summary>Delay nodes are told to wait before reconnecting when the server stops gracefully. Default 2 s.</summary>
    public TimeSpan GoAwayReconnectDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Whether nodes may carry forwarded TCP streams over dedicated data connections. Default
    /// <see cref="RelayStreamTransport.Automatic"/> (the same as <see cref="RelayStreamTransport.DedicatedConnection"/>
    /// here): for each public connection the relay asks a node that wants it (over the tunnel) to open one more
    /// connection to the control endpoint, presenting a single-use nonce, and forwards bytes unframed over it; other
    /// nodes keep their streams in the tunnel. <see cref="RelayStreamTransport.Multiplexed"/> keeps every node's streams
    /// in its tunnel.
    /// </summary>
    public RelayStreamTransport StreamTransport { get; set; } = RelayStreamTransport.Automatic;

    /// <summary>
    /// On Linux, forward the bytes of plain (non-TLS) dedicated data connections with <c>splice(2)</c>: socket -> kernel
    /// pipe -> socket, never copied into user space (pipes are held only while bytes flow). Falls back to copying by
    /// itself on other platforms, over TLS and where the kernel refuses. Set false to always copy. Default true.
    /// </summary>
    public bool UseZeroCopy { get; set; } = true;

    /// <summary>
    /// Most connections to the control endpoint still in their handshake (TLS, authentication, or a data connection
    /// not yet presenting its nonce); further ones are closed at once. Bounds what a connection flood holds. Default 1024.
    /// </summary>
    public int MaxPendingHandshakes { get; set; } = 1024;

    /// <summary>
    /// A stored mapping whose node has not held it (connected and claimed it) for this long is removed and its port
    /// freed; checked at start and periodically. <see cref="Timeout.InfiniteTimeSpan"/> keeps mappings forever. Default 7 days.
    /// </summary>
    public TimeSpan MappingRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid property.</summary>
    public void Validate()
    {
        Check(ControlEndPoint is not null, nameof(ControlEndPoint), "must be set");
        Check(PublicAddress is not null, nameof(PublicAddress), "must be set");
        Check(PortRangeStart is >= 1 and <= 65535, nameof(PortRangeStart), $"is {PortRangeStart}; use 1-65535");
        Check(PortRangeEnd is >= 1 and <= 65535 && PortRangeEnd >= PortRangeStart, nameof(PortRangeEnd), $"is {PortRangeEnd}; use {PortRangeStart}-65535");
        Check(MaxPortsPerNode > 0, nameof(MaxPortsPerNode), $"is {MaxPortsPerNode}; use a positive number");
        Check(Certificate is null || Certificate.HasPrivateKey, nameof(Certificate), "has no private key");
        Check(HandshakeTimeout > TimeSpan.Zero, nameof(HandshakeTimeout), "must be positive");
        Check(StreamOpenTimeout > TimeSpan.Zero, nameof(StreamOpenTimeout), "must be positive");
        Check(KeepAliveInterval > TimeSpan.Zero, nameof(KeepAliveInterval), "must be positive");
        Check(KeepAliveTimeout > KeepAliveInterval, nameof(KeepAliveTimeout), $"is {KeepAliveTimeout}; use more than KeepAliveInterval ({KeepAliveInterval})");
        Check(MaxStreamsPerTunnel > 0, nameof(MaxStreamsPerTunnel), "must be positive");
        Check(MaxPendingStreamOpens is >= 1 and <= 4096, nameof(MaxPendingStreamOpens), $"is {MaxPendingStreamOpens}; use 1-4096 (below the node's control queue of 4096 frames)");
        Check(InitialStreamWindow >= 16 * 1024, nameof(InitialStreamWindow), $"is {InitialStreamWindow}; use at least 16384 bytes");
        Check(MaxStreamWindow >= InitialStreamWindow, nameof(MaxStreamWindow), $"is {MaxStreamWindow}; use at least InitialStreamWindow ({InitialStreamWindow})");
        Check(UdpFlowIdleTimeout > TimeSpan.Zero, nameof(UdpFlowIdleTimeout), "must be positive");
        Check(MaxUdpFlowsPerMapping > 0, nameof(MaxUdpFlowsPerMapping), "must be positive");
        Check(MaxBandwidthPerMapping >= 0, nameof(MaxBandwidthPerMapping), "must not be negative");
        Check(GoAwayReconnectDelay >= TimeSpan.Zero, nameof(GoAwayReconnectDelay), "must not be negative");
        Check(Enum.IsDefined(StreamTransport), nameof(StreamTransport), $"is {(int)StreamTransport}; use Automatic, DedicatedConnection or Multiplexed");
        Check(MappingRetention > TimeSpan.Zero || MappingRetention == Timeout.InfiniteTimeSpan, nameof(MappingRetention), $"is {MappingRetention}; use a positive time or Timeout.InfiniteTimeSpan");
        Check(MaxPendingHandshakes > 0, nameof(MaxPendingHandshakes), $"is {MaxPendingHandshakes}; use a positive number");
    }

    internal static void Check(bool valid, string property, string problem)
    {
        if (!valid)
        {
            throw new ArgumentException($"{property} {problem}.", property);
        }
    }
}
