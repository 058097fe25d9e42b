using System.Net;
using System.Net.Sockets;

namespace DeCloud.Relay;

/// <summary>Whether a node's advertised endpoint accepts connections from outside.</summary>
public enum RelayReachability
{
    /// <summary>A connection succeeded: the node can be reached directly (use direct mode).</summary>
    Reachable = 1,

    /// <summary>The endpoint actively refused (RST): something answers there, but not the node's service.</summary>
    Refused = 2,

    /// <summary>No answer within the timeout: typical of NAT or a firewall dropping packets (use a relay).</summary>
    TimedOut = 3,

    /// <summary>The network reported the host or network unreachable.</summary>
    Unreachable = 4,
}

/// <summary>
/// Decides whether a node needs a relay: connect back to its advertised public endpoint; if that fails
/// the node is behind NAT. Run it from outside the node (the relay does it on request, see
/// <see cref="RelayClient.ProbeReachabilityAsync"/>).
/// </summary>
public static class ReachabilityProbe
{
    /// <summary>Tries one TCP connection to <paramref name="endPoint"/> within <paramref name="timeout"/>.</summary>
    public static async Task<RelayReachability> ProbeTcpAsync(IPEndPoint endPoint, TimeSpan timeout, TimeProvider? timeProvider = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        using var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        using var deadline = new CancellationTokenSource(timeout, timeProvider ?? TimeProvider.System);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            await socket.ConnectAsync(endPoint, bound.Token).ConfigureAwait(false);
            return RelayReachability.Reachable;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return RelayReachability.TimedOut;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return RelayReachability.Refused;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.TimedOut)
        {
            return RelayReachability.TimedOut;
        }
        catch (SocketException)
        {
            return RelayReachability.Unreachable;
        }
    }
}
