namespace DeCloud.Relay;

/// <summary>
/// How forwarded TCP connections travel between the relay and the node. UDP flows, mapping requests and
/// keepalives always use the tunnel; this only chooses the data path of TCP streams.
/// </summary>
public enum RelayStreamTransport
{
    /// <summary>
    /// One extra TCP (or TLS, pinned like the tunnel) connection from the node to the relay per forwarded stream,
    /// opened on the relay's request and authorised by a single-use nonce sent over the tunnel; bytes then flow
    /// unframed, socket to socket. The kernel does flow control and streams share no writer, so throughput
    /// matches a plain TCP forwarder. The default. Used only when both the relay and the node allow it.
    /// </summary>
    DedicatedConnection = 0,

    /// <summary>
    /// Every stream is framed and multiplexed over the one tunnel connection with per-stream flow control. Opens no
    /// connection besides the tunnel (useful where the network counts or restricts connections), at the cost of one
    /// shared writer and a copy through user space.
    /// </summary>
    Multiplexed = 1,
}
