using System.Buffers;
using System.Net;
using System.Net.Sockets;
using DeCloud.Relay.Protocol;
using DeCloud.Relay.Tunnel;
using DeCloud.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Relay.Tests.Tunnel;

public sealed class TunnelConnectionTests
{
    internal sealed class NullHandler : ITunnelHandler
    {
        public ValueTask OnControlAsync(FrameHeader header, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public void OnDatagram(FrameHeader header, in ReadOnlySequence<byte> payload)
        {
        }
    }

    internal sealed class Pair : IAsyncDisposable
    {
        public required TunnelConnection Server { get; init; }

        public required TunnelConnection Client { get; init; }

        public required Task<string> ServerRun { get; init; }

        public required Task<string> ClientRun { get; init; }

        public async ValueTask DisposeAsync()
        {
            Server.Abort("test over");
            Client.Abort("test over");
            await Task.WhenAll(ServerRun, ClientRun).Within();
            await Server.DisposeAsync();
            await Client.DisposeAsync();
        }
    }

    internal static async Task<Pair> CreateSutAsync(
        TimeProvider? time = null, TunnelSettings? settings = null, ILogger? serverLogger = null, ILogger? clientLogger = null, ITunnelHandler? clientHandler = null)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var clientSocket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accept = listener.AcceptAsync();
        await clientSocket.ConnectAsync(listener.LocalEndPoint!).Within();
        var serverSocket = await accept.Within();
        time ??= TimeProvider.System;
        settings ??= new TunnelSettings();
        var server = new TunnelConnection(new NetworkStream(serverSocket, true), settings, true, time, serverLogger ?? NullLogger.Instance, "server");
        var client = new TunnelConnection(new NetworkStream(clientSocket, true), settings, false, time, clientLogger ?? NullLogger.Instance, "client");
        return new Pair
        {
            Server = server,
            Client = client,
            ServerRun = server.RunAsync(new NullHandler(), CancellationToken.None),
            ClientRun = client.RunAsync(clientHandler ?? new NullHandler(), CancellationToken.None),
        };
    }

    private static async Task<long> DrainAsync(TunnelStream stream, long bytes, FakeTimeProvider? time = null)
    {
        long total = 0;
        while (total < bytes)
        {
            var result = await stream.Input.ReadAsync().AsTask().Within();
            var length = result.Buffer.Length;
            stream.Input.AdvanceTo(result.Buffer.End);
            total += length;
            time?.Advance(TimeSpan.FromSeconds(1));
            await stream.ConsumedAsync(length).AsTask().Within();
        }

        return total;
    }

    [Fact]
    public async Task Window_FastConsumer_GrowsBeyondInitial()
    {
        var time = new FakeTimeProvider();
        await using var pair = await CreateSutAsync(time);
        var sending = pair.Server.OpenStream()!;
        var receiving = pair.Client.AcceptStream(sending.Id)!;
        var data = new byte[8 * 1024 * 1024];
        var write = sending.WriteAsync(data).AsTask();
        Assert.Equal(data.Length, await DrainAsync(receiving, data.Length));
        await write.Within();
        Assert.True(receiving.ReceiveWindow > pair.Client.Settings.InitialWindow, $"window stayed {receiving.ReceiveWindow}");
        Assert.True(receiving.ReceiveWindow <= pair.Client.Settings.MaxWindow);
    }

    [Fact]
    public async Task Window_SlowConsumer_StaysAtInitial()
    {
        var time = new FakeTimeProvider();
        await using var pair = await CreateSutAsync(time);
        var sending = pair.Server.OpenStream()!;
        var receiving = pair.Client.AcceptStream(sending.Id)!;
        var data = new byte[2 * 1024 * 1024];
        var write = sending.WriteAsync(data).AsTask();
        await DrainAsync(receiving, data.Length, time);
        await write.Within();
        Assert.Equal(pair.Client.Settings.InitialWindow, receiving.ReceiveWindow);
    }

    [Fact]
    public async Task Write_WithoutCredit_WaitsForTheConsumer()
    {
        await using var pair = await CreateSutAsync();
        var sending = pair.Server.OpenStream()!;
        var receiving = pair.Client.AcceptStream(sending.Id)!;
        var window = pair.Client.Settings.InitialWindow;
        await sending.WriteAsync(new byte[window]).AsTask().Within();
        var blocked = sending.WriteAsync(new byte[1]).AsTask();
        await Task.Delay(200);
        Assert.False(blocked.IsCompleted, "a write beyond the window must wait for credit");
        await DrainAsync(receiving, window);
        await blocked.Within();
    }

    [Fact]
    public async Task Data_BeyondTheWindow_ClosesTheTunnelAsFlowControlViolation()
    {
        await using var pair = await CreateSutAsync();
        var sending = pair.Server.OpenStream()!;
        _ = pair.Client.AcceptStream(sending.Id)!;
        var chunk = new byte[FrameHeader.MaxPayload];
        try
        {
            for (var i = 0; i < 6; i++)
            {
                // Bypasses the credit check on purpose, like a broken or hostile peer.
                await pair.Server.SendAsync(FrameType.Data, sending.Id, chunk).AsTask().Within();
            }
        }
        catch (RelayException)
        {
        }

        var reason = await pair.ClientRun.Within();
        Assert.Contains("window", reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reset_ByPeer_FailsReadsAndWrites()
    {
        await using var pair = await CreateSutAsync();
        var a = pair.Server.OpenStream()!;
        var b = pair.Client.AcceptStream(a.Id)!;
        b.Abort(WireError.StreamAborted, "test");
        await Assert.ThrowsAsync<RelayException>(async () => await a.Input.ReadAsync().AsTask().Within());
        await Assert.ThrowsAsync<RelayException>(async () => await a.WriteAsync(new byte[1]).AsTask().Within());
    }

    [Fact]
    public async Task Fin_ByPeer_CompletesReadsAfterTheData()
    {
        await using var pair = await CreateSutAsync();
        var a = pair.Server.OpenStream()!;
        var b = pair.Client.AcceptStream(a.Id)!;
        await a.WriteAsync(new byte[] { 1, 2, 3 }).AsTask().Within();
        await a.CompleteWritesAsync().AsTask().Within();
        var total = 0L;
        while (true)
        {
            var result = await b.Input.ReadAsync().AsTask().Within();
            total += result.Buffer.Length;
            b.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        Assert.Equal(3, total);
    }

    [Fact]
    public async Task KeepAlive_PeerSilent_ClosesAfterTheTimeout()
    {
        var time = new FakeTimeProvider();
        var settings = new TunnelSettings { KeepAliveInterval = TimeSpan.FromSeconds(1), KeepAliveTimeout = TimeSpan.FromSeconds(3) };
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accept = listener.AcceptAsync();
        await silent.ConnectAsync(listener.LocalEndPoint!).Within();
        await using var tunnel = new TunnelConnection(new NetworkStream(await accept.Within(), true), settings, true, time, NullLogger.Instance, "t");
        var run = tunnel.RunAsync(new NullHandler(), CancellationToken.None);
        for (var i = 0; i < 6 && !run.IsCompleted; i++)
        {
            await Task.Delay(50);
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Contains("keepalive", await run.Within(), StringComparison.Ordinal);
    }

    [Fact]
    public void AcceptStream_IdOfOwnParity_Refused()
    {
        var settings = new TunnelSettings { MaxStreams = 1 };
        var tunnel = new TunnelConnection(new MemoryStream(), settings, false, TimeProvider.System, NullLogger.Instance, "t");
        Assert.Null(tunnel.AcceptStream(2));
        Assert.NotNull(tunnel.AcceptStream(1));
        Assert.Null(tunnel.AcceptStream(3));
    }
}
