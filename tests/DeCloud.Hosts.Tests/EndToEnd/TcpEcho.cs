using System.Net.Sockets;
using System.Text;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>The service behind a relayed port in end-to-end tests: an echo on loopback, and a client for one round trip.</summary>
internal static class TcpEcho
{
    /// <summary>Echoes every connection (or only the first, <paramref name="once"/>) until its client half-closes.</summary>
    public static async Task ServeAsync(TcpListener listener, bool once = false)
    {
        do
        {
            using var socket = await listener.AcceptSocketAsync();
            var buffer = new byte[4096];
            int n;
            while ((n = await socket.ReceiveAsync(buffer)) > 0)
            {
                await socket.SendAsync(buffer.AsMemory(0, n));
            }

            socket.Shutdown(SocketShutdown.Send);
        }
        while (!once);
    }

    /// <summary>Sends <paramref name="text"/>, half-closes and returns everything the other end sent back.</summary>
    public static async Task<string> RoundTripAsync(string host, int port, string text)
    {
        using var user = new TcpClient();
        await user.ConnectAsync(host, port).Within();
        var stream = user.GetStream();
        await stream.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask().Within();
        user.Client.Shutdown(SocketShutdown.Send);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadToEndAsync().Within();
    }
}
