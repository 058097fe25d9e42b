using System.Net;
using System.Net.Sockets;
using DeCloud.Relay.Forwarding;
using DeCloud.Testing;

namespace DeCloud.Relay.Tests.Forwarding;

public sealed class ConnectionPumpTests
{
    private static async Task<(Socket Outer, Socket Inner)> PairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var outer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accept = listener.AcceptAsync();
        await outer.ConnectAsync(listener.LocalEndPoint!).Within();
        return (outer, await accept.Within());
    }

    private static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory()).AsTask().Within();
            if (n == 0)
            {
                return received.ToArray();
            }

            received.Write(buffer, 0, n);
        }
    }

    [Fact]
    public async Task RunAsync_BothSidesHalfClose_BytesAndEndsCrossInBothDirections()
    {
        var (client, near) = await PairAsync();
        var (far, node) = await PairAsync();
        using (client)
        using (node)
        {
            var pump = ConnectionPump.RunAsync(new RawConnection(near), new RawConnection(far), PumpDirection.PublicSide, null, null, CancellationToken.None);
            var upload = new byte[1_000_000];
            new Random(1).NextBytes(upload);
            await client.SendAsync(upload.AsMemory()).AsTask().Within();
            client.Shutdown(SocketShutdown.Send);
            Assert.Equal(upload, await ReadToEndAsync(node));

            // The other direction still flows after the first one ended.
            await node.SendAsync("reply"u8.ToArray().AsMemory()).AsTask().Within();
            node.Shutdown(SocketShutdown.Send);
            Assert.Equal("reply"u8.ToArray(), await ReadToEndAsync(client));
            Assert.Equal(PumpResult.Completed, await pump.Within());
        }
    }

    [Fact]
    public async Task RunAsync_FarSideResets_NearSideResetAndResultNamesTheFarSide()
    {
        var (client, near) = await PairAsync();
        var (far, node) = await PairAsync();
        using (client)
        {
            var pump = ConnectionPump.RunAsync(new RawConnection(near), new RawConnection(far), PumpDirection.PublicSide, null, null, CancellationToken.None);
            await client.SendAsync("x"u8.ToArray().AsMemory()).AsTask().Within();
            var one = new byte[1];
            Assert.Equal(1, await node.ReceiveAsync(one.AsMemory()).AsTask().Within());
            node.LingerState = new LingerOption(true, 0);
            node.Dispose();
            Assert.Equal(PumpResult.TunnelFailed, await pump.Within());
            // A reset, not a clean end: the client learns that the stream failed.
            var buffer = new byte[16];
            var error = await Assert.ThrowsAsync<SocketException>(async () =>
            {
                while (await client.ReceiveAsync(buffer.AsMemory()).AsTask().Within() > 0)
                {
                }
            });
            Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
        }
    }

    [Fact]
    public async Task RunAsync_Cancelled_BothSidesClosed()
    {
        var (client, near) = await PairAsync();
        var (far, node) = await PairAsync();
        using (client)
        using (node)
        {
            using var cancel = new CancellationTokenSource();
            var pump = ConnectionPump.RunAsync(new RawConnection(near), new RawConnection(far), PumpDirection.PublicSide, null, null, cancel.Token);
            cancel.Cancel();
            Assert.Equal(PumpResult.Canceled, await pump.Within());
            var buffer = new byte[16];
            foreach (var socket in new[] { client, node })
            {
                try
                {
                    Assert.Equal(0, await socket.ReceiveAsync(buffer.AsMemory()).AsTask().Within());
                }
                catch (SocketException ex)
                {
                    Assert.Equal(SocketError.ConnectionReset, ex.SocketErrorCode);
                }
            }
        }
    }
}
