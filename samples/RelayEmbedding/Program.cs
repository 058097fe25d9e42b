// RelayEmbedding: the smallest program that embeds DeCloud.Relay, in two modes.
//
//   server --control 0.0.0.0:7835 --ports 40000-40100 --secret <text> [--db relay.db] [--public-host relay.example]
//          [--cert relay.pfx] [--bind 0.0.0.0] [--transport auto|dedicated|multiplexed] [--copy]
//   client --server relay.example:7835 --node <id> --secret <text> [--tls-pin <sha256-hex>] [--proxy]
//          [--limit <bytes/s>] [--probe <port>] [--transport auto|dedicated|multiplexed] [--copy] tcp:HOST:PORT [udp:HOST:PORT ...]
//
// --transport picks the data path of TCP streams: "auto" (the default: dedicated without TLS, multiplexed with TLS),
// "dedicated" (one connection from the node to the relay per stream, raw bytes) or "multiplexed" (every stream framed
// inside the one tunnel connection).
// --copy turns the zero-copy (splice) path of plain dedicated streams off: bytes are copied through buffers.
//
// The client prints one line per mapping, "PUBLIC <proto> <public host:port> -> <target host:port>",
// then serves until Ctrl+C or SIGTERM. The server prints "LISTENING <control endpoint>".
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using DeCloud.Relay;
using Microsoft.Extensions.Logging;

if (args.Length == 0 || args[0] is not ("server" or "client"))
{
    Console.Error.WriteLine("usage: RelayEmbedding server --control IP:PORT --ports FIRST-LAST --secret TEXT [--db FILE] [--public-host HOST] [--cert PFX] [--bind IP] [--transport auto|dedicated|multiplexed] [--copy]");
    Console.Error.WriteLine("       RelayEmbedding client --server HOST:PORT --node ID --secret TEXT [--tls-pin SHA256] [--proxy] [--limit BYTES_PER_S] [--transport auto|dedicated|multiplexed] [--copy] tcp:HOST:PORT|udp:HOST:PORT|both:HOST:PORT ...");
    return 2;
}

var options = Arguments.Parse(args.Skip(1).ToArray(), out var targets);
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.Cancel();
using var loggerFactory = new StderrLoggerFactory(options.ContainsKey("verbose") ? LogLevel.Debug : LogLevel.Information);
var secret = Encoding.UTF8.GetBytes(Arguments.Require(options, "secret"));
var transport = options.GetValueOrDefault("transport", "auto") switch
{
    "auto" => RelayStreamTransport.Automatic,
    "dedicated" => RelayStreamTransport.DedicatedConnection,
    "multiplexed" => RelayStreamTransport.Multiplexed,
    _ => (RelayStreamTransport?)null,
};
if (transport is null)
{
    Console.Error.WriteLine($"Bad --transport '{options["transport"]}': use auto, dedicated or multiplexed.");
    return 2;
}

try
{
    if (args[0] == "server")
    {
        var ports = Arguments.Require(options, "ports").Split('-');
        var serverOptions = new RelayServerOptions
        {
            ControlEndPoint = IPEndPoint.Parse(Arguments.Require(options, "control")),
            PublicAddress = options.TryGetValue("bind", out var bind) ? IPAddress.Parse(bind) : IPAddress.Any,
            PublicHost = options.GetValueOrDefault("public-host"),
            PortRangeStart = int.Parse(ports[0], System.Globalization.CultureInfo.InvariantCulture),
            PortRangeEnd = int.Parse(ports[^1], System.Globalization.CultureInfo.InvariantCulture),
            DatabasePath = options.GetValueOrDefault("db"),
            Certificate = options.TryGetValue("cert", out var cert) ? X509CertificateLoader.LoadPkcs12FromFile(cert, null) : null,
            StreamTransport = transport.Value,
            UseZeroCopy = !options.ContainsKey("copy"),
        };
        await using var server = new RelayServer(serverOptions, new HmacChallengeAuthenticator(secret), loggerFactory);
        await server.StartAsync(stop.Token);
        Console.WriteLine($"LISTENING {server.ControlEndPoint}");
        await WaitForStopAsync(stop.Token);
        await server.StopAsync();
        return 0;
    }

    var endpoint = Arguments.Require(options, "server");
    var colon = endpoint.LastIndexOf(':');
    var clientOptions = new RelayClientOptions
    {
        ServerHost = endpoint[..colon],
        ServerPort = int.Parse(endpoint[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture),
        NodeId = Arguments.Require(options, "node"),
        UseTls = options.ContainsKey("tls-pin"),
        PinnedCertificateSha256 = options.GetValueOrDefault("tls-pin"),
        ReconnectMinDelay = TimeSpan.FromMilliseconds(200),
        ReconnectMaxDelay = TimeSpan.FromSeconds(5),
        KeepAliveInterval = TimeSpan.FromSeconds(2),
        KeepAliveTimeout = TimeSpan.FromSeconds(6),
        StreamTransport = transport.Value,
        UseZeroCopy = !options.ContainsKey("copy"),
    };
    await using var client = new RelayClient(clientOptions, new HmacChallengeCredentials(secret), loggerFactory);
    await client.StartAsync(stop.Token);
    foreach (var target in targets)
    {
        var parts = target.Split(':');
        if (parts.Length != 3 || !int.TryParse(parts[2], out var port))
        {
            Console.Error.WriteLine($"Bad target '{target}': use tcp:HOST:PORT, udp:HOST:PORT or both:HOST:PORT.");
            return 2;
        }

        var protocol = parts[0] switch
        {
            "tcp" => RelayProtocol.Tcp,
            "udp" => RelayProtocol.Udp,
            "both" => RelayProtocol.TcpAndUdp,
            _ => throw new ArgumentException($"Unknown protocol '{parts[0]}' in '{target}'; use tcp, udp or both."),
        };
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(protocol, parts[1], port)
        {
            UseProxyProtocol = options.ContainsKey("proxy") && protocol != RelayProtocol.Udp,
            BandwidthLimitBytesPerSecond = options.TryGetValue("limit", out var limit) ? long.Parse(limit, System.Globalization.CultureInfo.InvariantCulture) : 0,
        }, stop.Token);
        Console.WriteLine(mapping.ToString());
    }

    if (options.TryGetValue("probe", out var probePort))
    {
        // Ask the relay to connect back to this node's public address: Reachable means direct mode would work.
        Console.WriteLine($"REACHABILITY {await client.ProbeReachabilityAsync(int.Parse(probePort, System.Globalization.CultureInfo.InvariantCulture), stop.Token)}");
    }

    await WaitForStopAsync(stop.Token);
    return 0;
}
catch (Exception ex) when (ex is RelayException or ArgumentException or FormatException or IOException)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 1;
}

static async Task WaitForStopAsync(CancellationToken token)
{
    try
    {
        await Task.Delay(Timeout.Infinite, token);
    }
    catch (OperationCanceledException)
    {
    }
}

/// <summary>Parses "--name value" and "--flag" options; everything else is a target.</summary>
internal static class Arguments
{
    private static readonly HashSet<string> Flags = ["proxy", "verbose", "copy"];

    public static Dictionary<string, string> Parse(string[] args, out List<string> positional)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        positional = [];
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i].StartsWith("--", StringComparison.Ordinal))
            {
                var name = args[i][2..];
                options[name] = Flags.Contains(name) ? "true" : i + 1 < args.Length ? args[++i] : throw new ArgumentException($"--{name} needs a value.");
            }
            else
            {
                positional.Add(args[i]);
            }
        }

        return options;
    }

    public static string Require(Dictionary<string, string> options, string name) =>
        options.TryGetValue(name, out var value) ? value : throw new ArgumentException($"--{name} is required.");
}

/// <summary>A tiny logger to stderr, so the sample needs no logging package beyond the abstractions.</summary>
internal sealed class StderrLoggerFactory(LogLevel minimum) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => new StderrLogger(categoryName, minimum);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class StderrLogger(string category, LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                Console.Error.WriteLine($"{logLevel.ToString()[..4].ToLowerInvariant()} {category}[{eventId.Id}]: {formatter(state, exception)}");
            }
        }
    }
}
