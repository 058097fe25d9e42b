using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace DeCloud.Relay.Diagnostics;

/// <summary>The relay's instruments (meter <c>DeCloud.Relay</c>), named by OpenTelemetry conventions.</summary>
internal static class RelayMetrics
{
    /// <summary>The meter name to subscribe to.</summary>
    public const string MeterName = "DeCloud.Relay";

    public static readonly Meter Meter = new(MeterName, "1.0");

    public static readonly ActivitySource ActivitySource = new(MeterName);

    /// <summary>Bytes forwarded, tagged <c>direction</c> (<c>inbound</c>: public client to target, <c>outbound</c>).</summary>
    public static readonly Counter<long> Bytes = Meter.CreateCounter<long>("decloud.relay.bytes", "By", "Bytes forwarded through the relay.");

    /// <summary>Streams opened, tagged <c>protocol</c>.</summary>
    public static readonly Counter<long> Streams = Meter.CreateCounter<long>("decloud.relay.streams", "{stream}", "Streams (TCP connections, UDP flows) opened.");

    /// <summary>Streams open now.</summary>
    public static readonly UpDownCounter<long> ActiveStreams = Meter.CreateUpDownCounter<long>("decloud.relay.streams.active", "{stream}", "Streams open now.");

    /// <summary>Tunnels connected now.</summary>
    public static readonly UpDownCounter<long> ActiveTunnels = Meter.CreateUpDownCounter<long>("decloud.relay.tunnels.active", "{tunnel}", "Tunnels connected now.");

    /// <summary>Tunnel connection attempts, tagged <c>result</c> (<c>ok</c>, <c>auth_failed</c>, <c>error</c>).</summary>
    public static readonly Counter<long> Connects = Meter.CreateCounter<long>("decloud.relay.connects", "{connect}", "Tunnel connection attempts.");

    /// <summary>Dedicated data connections presented to the relay, tagged <c>result</c> (<c>ok</c>, <c>wrong_nonce</c>, <c>unknown_channel</c>, <c>session_closed</c>, <c>malformed</c>).</summary>
    public static readonly Counter<long> DataConnections = Meter.CreateCounter<long>("decloud.relay.data_connections", "{connection}", "Dedicated data connections presented by nodes.");

    /// <summary>Errors, tagged <c>reason</c>.</summary>
    public static readonly Counter<long> Errors = Meter.CreateCounter<long>("decloud.relay.errors", "{error}", "Errors: protocol violations, failed connects, aborted streams.");

    /// <summary>
    /// Multiplexed streams reset, tagged <c>reason</c> (the reset code: <c>socket_failed</c>, <c>connect_failed</c>,
    /// <c>too_many_streams</c>, <c>stream_aborted</c>, ...) and <c>side</c> (<c>local</c>: this end reset it; <c>peer</c>).
    /// </summary>
    public static readonly Counter<long> StreamResets = Meter.CreateCounter<long>("decloud.relay.stream.resets", "{stream}", "Multiplexed streams reset, by reason and side.");

    /// <summary>UDP datagrams forwarded, tagged <c>direction</c>.</summary>
    public static readonly Counter<long> Datagrams = Meter.CreateCounter<long>("decloud.relay.udp.datagrams", "{datagram}", "UDP datagrams forwarded.");

    public static void StreamReset(string reason, bool local) =>
        StreamResets.Add(1, new KeyValuePair<string, object?>("reason", reason), new KeyValuePair<string, object?>("side", local ? "local" : "peer"));

    public static void Error(string reason) => Errors.Add(1, new KeyValuePair<string, object?>("reason", reason));
}
