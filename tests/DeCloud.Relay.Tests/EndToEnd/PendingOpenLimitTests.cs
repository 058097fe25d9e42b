using System.Net;
using System.Net.Sockets;
using DeCloud.Relay.Diagnostics;
using DeCloud.Testing;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace DeCloud.Relay.Tests.EndToEnd;

public sealed class PendingOpenLimitTests
{
    [Fact]
    public async Task PublicConnections_BeyondThePendingOpenLimit_AreResetWhileTheTunnelStays()
    {
        using var errors = new MetricCollector<long>(RelayMetrics.Meter, "decloud.relay.errors");
        await using var harness = await RelayHarness.StartAsync(o =>
        {
            o.MaxPendingStreamOpens = 3;
            o.StreamOpenTimeout = TimeSpan.FromSeconds(60);
        }, RelayStreamTransport.Multiplexed);

        // A target whose accept queue (backlog 0: one connection) is full: the node's connects to it hang, so its streams
        // stay unaccepted, as toward a slow node.
        using var stuck = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        stuck.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        stuck.Listen(0);
        var fillers = new List<Socket>();
        try
        {
            for (var i = 0; i < 1; i++)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                fillers.Add(filler);
                await filler.ConnectAsync(stuck.LocalEndPoint!).Within();
            }

            var client = await harness.StartClientAsync(configure: o => o.TargetConnectTimeout = TimeSpan.FromSeconds(60));
            var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", ((IPEndPoint)stuck.LocalEndPoint!).Port)).Within();
            var pending = new List<Socket>();
            for (var i = 0; i < 3; i++)
            {
                pending.Add(await Net.ConnectAsync(mapping.PublicPort));
            }

            await RelayLoopbackTests.WaitForAsync(() => harness.Server.PendingStreamOpens("node-1") == 3, "three streams waiting for the node");
            Assert.True(await RefusedAsync(mapping.PublicPort), "a connection beyond the limit is reset at once");
            Assert.Contains(errors.GetMeasurementSnapshot(), m => m.Tags["reason"] as string == "too_many_pending_opens");
            Assert.Equal(1, client.ConnectCount);
            Assert.True(client.IsConnected);
            Assert.Equal(3, harness.Server.PendingStreamOpens("node-1"));
            foreach (var socket in pending)
            {
                socket.Dispose();
            }
        }
        finally
        {
            foreach (var filler in fillers)
            {
                filler.Dispose();
            }
        }
    }

    private static async Task<bool> RefusedAsync(int port)
    {
        try
        {
            // The reset may arrive while the connect completes: then the connect itself reports it.
            using var socket = await Net.ConnectAsync(port);
            return await socket.ReceiveAsync(new byte[1].AsMemory()).AsTask().Within(TimeSpan.FromSeconds(10), "the refusal") == 0;
        }
        catch (SocketException)
        {
            return true;
        }
    }
}
