using System.Buffers;
using DeCloud.Relay.Diagnostics;
using DeCloud.Relay.Protocol;
using DeCloud.Relay.Tunnel;
using DeCloud.Testing;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace DeCloud.Relay.Tests.Tunnel;

/// <summary>Every stream reset carries its reason to the peer, and both ends log it and count it by reason.</summary>
public sealed class StreamResetReasonTests
{
    [Fact]
    public async Task Abort_WithAReason_IsLoggedAndCountedAtBothEnds()
    {
        using var resets = new MetricCollector<long>(RelayMetrics.Meter, "decloud.relay.stream.resets");
        var serverLog = new FakeLogger();
        var clientLog = new FakeLogger();
        await using var pair = await TunnelConnectionTests.CreateSutAsync(serverLogger: serverLog, clientLogger: clientLog);
        var opened = pair.Server.OpenStream()!;
        var accepted = pair.Client.AcceptStream(opened.Id)!;

        accepted.Abort(WireError.SocketFailed, "the target's connection failed while reading: Connection reset by peer");

        var error = await Assert.ThrowsAsync<RelayException>(async () => await opened.Input.ReadAsync().AsTask().Within());
        Assert.Contains("Connection reset by peer", error.Message, StringComparison.Ordinal);
        Assert.Contains(clientLog.Collector.GetSnapshot(), r => r.Id.Id == 103 && r.Message.Contains("socket_failed", StringComparison.Ordinal)
            && r.Message.Contains("Connection reset by peer", StringComparison.Ordinal));
        Assert.Contains(serverLog.Collector.GetSnapshot(), r => r.Id.Id == 104 && r.Message.Contains("socket_failed", StringComparison.Ordinal)
            && r.Message.Contains("Connection reset by peer", StringComparison.Ordinal));
        var snapshot = resets.GetMeasurementSnapshot();
        Assert.Contains(snapshot, m => m.Tags["reason"] as string == "socket_failed" && m.Tags["side"] as string == "local");
        Assert.Contains(snapshot, m => m.Tags["reason"] as string == "socket_failed" && m.Tags["side"] as string == "peer");
        Assert.Null(pair.Server.CloseReason);
    }

    [Fact]
    public async Task Abort_Twice_SendsAndLogsOneReset()
    {
        var clientLog = new FakeLogger();
        await using var pair = await TunnelConnectionTests.CreateSutAsync(clientLogger: clientLog);
        var opened = pair.Server.OpenStream()!;
        var accepted = pair.Client.AcceptStream(opened.Id)!;

        accepted.Abort(WireError.SocketFailed, "first");
        accepted.Abort(WireError.StreamAborted, "second");

        await Assert.ThrowsAsync<RelayException>(async () => await opened.Input.ReadAsync().AsTask().Within());
        var logged = Assert.Single(clientLog.Collector.GetSnapshot(), r => r.Id.Id == 103);
        Assert.Contains("first", logged.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StreamAccept_ForAStreamTheOpenerGaveUp_IsResetAtTheAcceptor()
    {
        var clientLog = new FakeLogger();
        await using var pair = await TunnelConnectionTests.CreateSutAsync(clientLogger: clientLog);
        var opened = pair.Server.OpenStream()!;

        // The relay gives up (open timeout) before the node's control loop got to the StreamOpen ...
        opened.Abort(WireError.ConnectFailed, "the node did not accept the stream within 00:00:10");

        // Frames arrive in order: once a byte sent after that reset is read, the reset found no stream at the node.
        var marker = pair.Server.OpenStream()!;
        var markerAtNode = pair.Client.AcceptStream(marker.Id)!;
        await marker.WriteAsync(new byte[] { 1 }).AsTask().Within();
        await markerAtNode.Input.ReadAsync().AsTask().Within();

        // ... and the node, late, registers the stream, reaches its target and accepts it.
        var late = pair.Client.AcceptStream(opened.Id)!;
        await pair.Client.SendAsync(FrameType.StreamAccept, opened.Id, ReadOnlyMemory<byte>.Empty).AsTask().Within();

        // The reset sent on the timeout found no stream at the node; the one answering the late accept frees it there.
        var error = await Assert.ThrowsAsync<RelayException>(async () => await late.WriteAsync(new byte[1024 * 1024]).AsTask().Within());
        Assert.Contains("gave up", error.Message, StringComparison.Ordinal);
        Assert.False(pair.Client.TryGetStream(opened.Id, out _));
    }

    [Fact]
    public async Task ReadLoop_InternalError_IsLoggedAsAnErrorAndClosesOnlyThatTunnel()
    {
        var clientLog = new FakeLogger();
        await using var pair = await TunnelConnectionTests.CreateSutAsync(clientLogger: clientLog, clientHandler: new ThrowingHandler());

        await pair.Server.SendAsync(FrameType.UdpDatagram, 1, new byte[8]).AsTask().Within();

        var reason = await pair.ClientRun.Within();
        Assert.Contains("internal error", reason, StringComparison.Ordinal);
        Assert.Contains("handler bug", reason, StringComparison.Ordinal);
        var logged = Assert.Single(clientLog.Collector.GetSnapshot(), r => r.Id.Id == 105);
        Assert.Equal(LogLevel.Error, logged.Level);
        Assert.IsType<FormatException>(logged.Exception);
    }

    private sealed class ThrowingHandler : ITunnelHandler
    {
        public ValueTask OnControlAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public void OnDatagram(FrameHeader header, in ReadOnlySequence<byte> payload) => throw new FormatException("handler bug");
    }
}
