using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace DeCloud.Agent.Ports;

/// <summary>
/// Forwards public TCP ports of a public node to their targets in user space (listen on the public
/// port, dial the target, copy both ways, half-close on EOF). Used where kernel DNAT is not available
/// (no root, loopback demo). One listener per port; closing a port ends its listener and connections.
/// </summary>
internal sealed class TcpPortForwarder : IAsyncDisposable
{
    private readonly ConcurrentDictionary<int, Listener> _listeners = new();
    private readonly string _bindHost;

    public TcpPortForwarder(string bindHost) => _bindHost = bindHost;

    /// <summary>Starts forwarding <paramref name="publicPort"/> (idempotent: an open port with the same target stays as it is).</summary>
    public void Open(int publicPort, string targetHost, int targetPort)
    {
        if (_listeners.TryGetValue(publicPort, out var existing))
        {
            if (existing.TargetHost == targetHost && existing.TargetPort == targetPort)
            {
                return;
            }

            Close(publicPort);
        }

        var address = IPAddress.TryParse(_bindHost, out var ip) ? ip : IPAddress.Loopback;
        var socket = new TcpListener(address, publicPort);
        socket.Start(128);
        var listener = new Listener(socket, targetHost, targetPort);
        _listeners[publicPort] = listener;
        listener.Loop = AcceptLoopAsync(listener);
    }

    public bool IsOpen(int publicPort) => _listeners.ContainsKey(publicPort);

    public void Close(int publicPort)
    {
        if (_listeners.TryRemove(publicPort, out var l))
        {
            l.Stop();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var port in _listeners.Keys)
        {
            Close(port);
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    private static async Task AcceptLoopAsync(Listener l)
    {
        while (!l.Stopped.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await l.Socket.AcceptSocketAsync(l.Stopped.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = ForwardAsync(client, l);
        }
    }

    private static async Task ForwardAsync(Socket client, Listener l)
    {
        using (client)
        using (var target = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            try
            {
                await target.ConnectAsync(l.TargetHost, l.TargetPort, l.Stopped.Token).ConfigureAwait(false);
                await Task.WhenAll(CopyAsync(client, target, l.Stopped.Token), CopyAsync(target, client, l.Stopped.Token)).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // One connection failed (target down, reset, closed port); the listener keeps running.
            }
        }
    }

    /// <summary>Copies until EOF, then half-closes the destination so the peer sees EOF too.</summary>
    internal static async Task CopyAsync(Socket from, Socket to, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer.AsMemory(), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private sealed class Listener(TcpListener socket, string targetHost, int targetPort)
    {
        public TcpListener Socket { get; } = socket;

        public string TargetHost { get; } = targetHost;

        public int TargetPort { get; } = targetPort;

        public CancellationTokenSource Stopped { get; } = new();

        public Task? Loop { get; set; }

        public void Stop()
        {
            Stopped.Cancel();
            Socket.Stop();
        }
    }
}
