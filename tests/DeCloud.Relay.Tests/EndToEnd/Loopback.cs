using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using DeCloud.Relay.Forwarding;
using DeCloud.Testing;

namespace DeCloud.Relay.Tests.EndToEnd;

/// <summary>A TCP echo target on loopback (port 0). Optionally strips and records a PROXY v2 header first.</summary>
internal sealed class TcpEcho : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly bool _expectProxy;

    public TcpEcho(bool expectProxy = false)
    {
        _expectProxy = expectProxy;
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(1024);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _loop = AcceptAsync();
    }

    public int Port { get; }

    public ConcurrentQueue<IPEndPoint> ProxySources { get; } = new();

    public int Accepted;

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await _loop;
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }

            Interlocked.Increment(ref Accepted);
            _ = EchoAsync(socket);
        }
    }

    private async Task EchoAsync(Socket socket)
    {
        using var _ = socket;
        var buffer = new byte[64 * 1024];
        try
        {
            if (_expectProxy)
            {
                var header = new byte[28];
                var read = 0;
                while (read < 16)
                {
                    read += await socket.ReceiveAsync(header.AsMemory(read, 16 - read), _stop.Token);
                }

                var total = 16 + ((header[14] << 8) | header[15]);
                header = header.Length >= total ? header : [.. header, .. new byte[total - header.Length]];
                while (read < total)
                {
                    var n = await socket.ReceiveAsync(header.AsMemory(read, total - read), _stop.Token);
                    if (n == 0)
                    {
                        return;
                    }

                    read += n;
                }

                ProxySources.Enqueue(ProxyProtocolV2.TryParse(header)!.Value.Source);
            }

            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, _stop.Token);
                if (n == 0)
                {
                    socket.Shutdown(SocketShutdown.Send);
                    return;
                }

                await socket.SendAsync(buffer.AsMemory(0, n), _stop.Token);
            }
        }
        catch (Exception)
        {
        }
    }
}

/// <summary>A UDP echo target on loopback.</summary>
internal sealed class UdpEcho : IAsyncDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public UdpEcho()
    {
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Port = ((IPEndPoint)_socket.LocalEndPoint!).Port;
        _loop = LoopAsync();
    }

    public int Port { get; }

    public ConcurrentDictionary<IPEndPoint, int> Sources { get; } = new();

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _socket.Dispose();
        await _loop;
        _stop.Dispose();
    }

    private async Task LoopAsync()
    {
        var buffer = new byte[65536];
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var r = await _socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
                Sources.AddOrUpdate((IPEndPoint)r.RemoteEndPoint, 1, (_, n) => n + 1);
                await _socket.SendToAsync(buffer.AsMemory(0, r.ReceivedBytes), r.RemoteEndPoint, _stop.Token);
            }
            catch (Exception)
            {
                return;
            }
        }
    }
}

/// <summary>A relay server and clients on loopback, with a private port block and database per harness.</summary>
internal sealed class RelayHarness : IAsyncDisposable
{
    public static readonly byte[] Secret = "0123456789abcdef0123456789abcdef"u8.ToArray();
    private static int s_block;
    private readonly List<RelayClient> _clients = [];
    private readonly Action<RelayServerOptions>? _configure;
    private readonly RelayStreamTransport _transport;
    private readonly TimeProvider? _timeProvider;

    private RelayHarness(Action<RelayServerOptions>? configure, RelayStreamTransport transport, TimeProvider? timeProvider = null)
    {
        _timeProvider = timeProvider;
        _configure = configure;
        _transport = transport;
        var block = Interlocked.Increment(ref s_block);
        PortStart = 20000 + (block * 40);
        Directory = System.IO.Directory.CreateTempSubdirectory("dcr-relay-").FullName;
    }

    public int PortStart { get; }

    public string Directory { get; }

    public RelayServer Server { get; private set; } = null!;

    public int ControlPort { get; private set; }

    /// <summary>Starts a relay; <paramref name="transport"/> is the data path of the relay and of every client started from the harness.</summary>
    public static async Task<RelayHarness> StartAsync(Action<RelayServerOptions>? configure = null, RelayStreamTransport transport = RelayStreamTransport.Automatic, TimeProvider? timeProvider = null)
    {
        var harness = new RelayHarness(configure, transport, timeProvider);
        await harness.StartServerAsync(0);
        return harness;
    }

    public RelayServerOptions CreateOptions(int controlPort)
    {
        var options = new RelayServerOptions
        {
            ControlEndPoint = new IPEndPoint(IPAddress.Loopback, controlPort),
            PublicAddress = IPAddress.Loopback,
            PortRangeStart = PortStart,
            PortRangeEnd = PortStart + 39,
            DatabasePath = Path.Combine(Directory, "relay.db"),
            GoAwayReconnectDelay = TimeSpan.FromMilliseconds(100),
            StreamTransport = _transport,
        };
        _configure?.Invoke(options);
        return options;
    }

    public async Task StartServerAsync(int controlPort)
    {
        Server = new RelayServer(CreateOptions(controlPort), new HmacChallengeAuthenticator(Secret), timeProvider: _timeProvider);
        await Server.StartAsync().Within();
        ControlPort = Server.ControlEndPoint!.Port;
    }

    /// <summary>Stops the relay (graceful or not) and starts a new one on the same control port and database.</summary>
    public async Task RestartServerAsync()
    {
        await Server.DisposeAsync().AsTask().Within();
        await StartServerAsync(ControlPort);
    }

    public async Task<RelayClient> StartClientAsync(string nodeId = "node-1", byte[]? secret = null, Action<RelayClientOptions>? configure = null, bool waitConnected = true)
    {
        var options = new RelayClientOptions
        {
            ServerHost = "127.0.0.1",
            ServerPort = ControlPort,
            NodeId = nodeId,
            ReconnectMinDelay = TimeSpan.FromMilliseconds(50),
            ReconnectMaxDelay = TimeSpan.FromMilliseconds(500),
            StreamTransport = _transport,
        };
        configure?.Invoke(options);
        var client = new RelayClient(options, new HmacChallengeCredentials(secret ?? Secret));
        _clients.Add(client);
        await client.StartAsync();
        if (waitConnected)
        {
            await client.WaitUntilConnectedAsync().Within(what: "client connect");
        }

        return client;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync().AsTask().Within();
        }

        await Server.DisposeAsync().AsTask().Within();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class Net
{
    public static async Task<Socket> ConnectAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port)).Within(what: $"connect to {port}");
        return socket;
    }

    /// <summary>Sends <paramref name="data"/> and reads the same number of bytes back.</summary>
    public static async Task<byte[]> RoundTripAsync(Socket socket, byte[] data)
    {
        var sending = socket.SendAsync(data.AsMemory()).AsTask();
        var received = new byte[data.Length];
        var read = 0;
        while (read < data.Length)
        {
            var n = await socket.ReceiveAsync(received.AsMemory(read)).AsTask().Within(what: "echo");
            if (n == 0)
            {
                throw new IOException($"closed after {read} of {data.Length} bytes");
            }

            read += n;
        }

        await sending.Within();
        return received;
    }

    /// <summary>Connects through a public port and checks an echo round trip, retrying while the mapping is being (re)attached.</summary>
    public static async Task EchoWorksAsync(int port, string text = "hello")
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            try
            {
                using var socket = await ConnectAsync(port);
                var bytes = System.Text.Encoding.ASCII.GetBytes(text);
                Assert.Equal(bytes, await RoundTripAsync(socket, bytes));
                return;
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }
}
