namespace DeCloud.Relay;

/// <summary>
/// How forwarded TCP connections travel between the relay and the node. UDP flows, mapping requests and
/// keepalives always use the tunnel; this only chooses the data path of TCP streams.
/// </summary>
public enum RelayStreamTransport
{
    /// <summary>
    /// The default: <see cref="DedicatedConnection"/> when the tunnel is plain TCP, <see cref="Multiplexed"/> when it
    /// uses TLS. A dedicated stream over TLS costs a TLS handshake per connection, which measured several times slower
    /// connection setup than multiplexing (below <c>ssh -R</c>); without TLS a dedicated stream costs one cheap TCP
    /// connect and runs several times faster. On a relay, <see cref="Automatic"/> allows dedicated connections and lets
    /// each node decide.
    /// </summary>
    Automatic = 0,

    /// <summary>
    /// One extra TCP (or TLS, pinned like the tunnel) connection from the node to the relay per forwarded stream,
    /// opened on the relay's request and authorised by a single-use nonce sent over the tunnel; bytes then flow
    /// unframed, socket to socket. The kernel does flow control and streams share no writer, so throughput
    /// matches a plain TCP forwarder. Used only when both the relay and the node allow it.
    /// </summary>
    DedicatedConnection = 1,

    /// <summary>
    /// Every stream is framed and multiplexed over the one tunnel connection with per-stream flow control. Opens no
    /// connection besides the tunnel (useful where the network counts or restricts connections), at the cost of one
    /// shared writer and a copy through user space.
    /// </summary>
    Multiplexed = 2,
}
