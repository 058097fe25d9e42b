namespace DeCloud.Relay;

/// <summary>Which transport a mapping forwards.</summary>
public enum RelayProtocol
{
    /// <summary>TCP connections, one multiplexed stream each.</summary>
    Tcp = 1,

    /// <summary>UDP datagrams, grouped into flows by client address and port.</summary>
    Udp = 2,

    /// <summary>TCP and UDP on the same public port number.</summary>
    TcpAndUdp = 3,
}
