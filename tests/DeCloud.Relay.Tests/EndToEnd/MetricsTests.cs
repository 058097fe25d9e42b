using DeCloud.Relay.Diagnostics;
using DeCloud.Testing;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace DeCloud.Relay.Tests.EndToEnd;

public sealed class MetricsTests
{
    [Fact]
    public async Task Forwarding_RecordsConnectsStreamsAndBytesInBothDirections()
    {
        using var connects = new MetricCollector<long>(RelayMetrics.Meter, "decloud.relay.connects");
        using var streams = new MetricCollector<long>(RelayMetrics.Meter, "decloud.relay.streams");
        using var bytes = new MetricCollector<long>(RelayMetrics.Meter, "decloud.relay.bytes");
        await using var harness = await RelayHarness.StartAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync("metrics-node");
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        await Net.EchoWorksAsync(mapping.PublicPort, new string('m', 1000));

        Assert.Contains(connects.GetMeasurementSnapshot(), m => m.Tags["result"] as string == "ok");
        Assert.Contains(streams.GetMeasurementSnapshot(), m => m.Tags["protocol"] as string == "tcp");
        var snapshot = bytes.GetMeasurementSnapshot();
        Assert.True(snapshot.Where(m => m.Tags["direction"] as string == "inbound").Sum(m => m.Value) >= 1000);
        Assert.True(snapshot.Where(m => m.Tags["direction"] as string == "outbound").Sum(m => m.Value) >= 1000);
    }

    [Fact]
    public async Task WrongSecret_RecordsAuthFailure()
    {
        using var connects = new MetricCollector<long>(RelayMetrics.Meter, "decloud.relay.connects");
        await using var harness = await RelayHarness.StartAsync();
        var bad = await harness.StartClientAsync("intruder", secret: "ffffffffffffffffffffffffffffffff"u8.ToArray(), waitConnected: false);
        await RelayLoopbackTests.WaitForAsync(() => bad.LastError is RelayAuthenticationException, "an authentication failure");
        await RelayLoopbackTests.WaitForAsync(() => connects.GetMeasurementSnapshot().Any(m => m.Tags["result"] as string == "auth_failed"), "the auth_failed measurement");
    }

    [Theory]
    [InlineData(RelayStreamTransport.DedicatedConnection, "dedicated")]
    [InlineData(RelayStreamTransport.Multiplexed, "multiplexed")]
    public async Task Tracing_ConnectAndStreamOpen_EmitSpansOnTheRelaySource(RelayStreamTransport transport, string expected)
    {
        var nodeId = "traced-" + expected;
        var spans = new System.Collections.Concurrent.ConcurrentQueue<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == "DeCloud.Relay",
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        await using var harness = await RelayHarness.StartAsync(transport: transport);
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync(nodeId);
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        await Net.EchoWorksAsync(mapping.PublicPort);

        Assert.Contains(spans, a => a.OperationName == "relay.tunnel.connect" && a.GetTagItem("decloud.relay.node_id") as string == nodeId
            && a.Status == System.Diagnostics.ActivityStatusCode.Ok);
        await RelayLoopbackTests.WaitForAsync(() => spans.Any(a => a.OperationName == "relay.stream.open" && a.GetTagItem("decloud.relay.node_id") as string == nodeId
            && a.GetTagItem("decloud.relay.transport") as string == expected && a.Status == System.Diagnostics.ActivityStatusCode.Ok), "the stream.open span");
    }
}
