using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DeCloud.Relay;

namespace DeCloud.Benchmarks.Relay;

/// <summary>
/// <c>quick relay</c>: on loopback, single-stream throughput, 16-stream aggregate, connections per second and 64-byte
/// round-trip latency for a direct connection, socat in the two-hop shape, <c>ssh -R</c>, and our relay (plain and
/// TLS, each over dedicated data connections (the default) and multiplexed in the tunnel); then the relay's memory per idle tunnel and per idle stream with 10,000 open streams.
/// </summary>
public sealed class RelayQuickArea : IQuickArea
{
    private static readonly byte[] Secret = "bench-secret-0123456789abcdef"u8.ToArray();
    private static readonly TimeSpan ThroughputWindow = TimeSpan.FromSeconds(1);

    /// <inheritdoc />
    public string Name => "relay";

    /// <inheritdoc />
    public async Task RunAsync(QuickReport report, CancellationToken cancellationToken)
    {
        await using var target = new BenchTarget();
        await using var peers = new PeerProcesses();
        var results = new Dictionary<string, Metrics>(StringComparer.Ordinal);

        results["direct"] = await MeasureAsync(target.Port, cancellationToken);
        report.Note($"direct: {results["direct"]}");
        if (PeerProcesses.Has("socat"))
        {
            var (socatPort, socatPids) = await peers.StartSocatTwoHopAsync(target.Port);
            results["socat"] = await MeasureAsync(socatPort, cancellationToken, socatPids);
            report.Note($"socat two-hop: {results["socat"]}");
        }
        else
        {
            report.Note("socat missing: run eng/install-deps");
        }

        if (PeerProcesses.Has("sshd") && PeerProcesses.Has("ssh"))
        {
            results["ssh"] = await MeasureAsync(await peers.StartSshReverseAsync(target.Port), cancellationToken);
            report.Note($"ssh -R: {results["ssh"]}");
        }
        else
        {
            report.Note("sshd/ssh missing: run eng/install-deps");
        }

        using var certificate = CreateCertificate();
        using var loggerFactory = StderrLoggerFactory.FromEnvironment();
        // The default (Automatic: dedicated over plain TCP, multiplexed over TLS) first, then the other data path of each.
        foreach (var transport in new[] { RelayStreamTransport.Automatic, RelayStreamTransport.DedicatedConnection, RelayStreamTransport.Multiplexed })
        {
            foreach (var tls in new[] { false, true })
            {
                if ((transport == RelayStreamTransport.DedicatedConnection && !tls) || (transport == RelayStreamTransport.Multiplexed && tls))
                {
                    continue; // Already measured as the default.
                }

                var publicPort = PeerProcesses.FreePort();
                await using var server = new RelayServer(new RelayServerOptions
                {
                    ControlEndPoint = new IPEndPoint(IPAddress.Loopback, 0),
                    PublicAddress = IPAddress.Loopback,
                    // A port free right now, not a fixed range: other sessions on a shared machine run this benchmark too.
                    PortRangeStart = publicPort,
                    PortRangeEnd = publicPort,
                    Certificate = tls ? certificate : null,
                    StreamTransport = transport,
                }, new HmacChallengeAuthenticator(Secret), loggerFactory);
                await server.StartAsync(cancellationToken);
                await using var client = new RelayClient(new RelayClientOptions
                {
                    ServerHost = "127.0.0.1",
                    ServerPort = server.ControlEndPoint!.Port,
                    NodeId = "bench",
                    UseTls = tls,
                    PinnedCertificateSha256 = tls ? certificate.GetCertHashString(HashAlgorithmName.SHA256) : null,
                    StreamTransport = transport,
                }, new HmacChallengeCredentials(Secret), loggerFactory);
                await client.StartAsync(cancellationToken);
                var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", target.Port), cancellationToken);
                var name = (tls ? "relay_tls" : "relay_plain") + transport switch
                {
                    RelayStreamTransport.Multiplexed => "_multiplexed",
                    RelayStreamTransport.DedicatedConnection => "_dedicated",
                    _ => string.Empty,
                };
                results[name] = await MeasureAsync(mapping.PublicPort, cancellationToken);
                report.Note($"{name}: {results[name]}");
            }
        }

        // The deployed shape, as socat's: the relay and the node as their own processes (the RelayEmbedding sample,
        // default transport), so they do not share a runtime and thread pool with the load generator.
        if (FindSample() is { } relaySample)
        {
            // Zero-copy (splice, the default on Linux) and the copy path (--copy), each with its CPU time per GB.
            foreach (var (name, extra) in new[] { ("relay_plain_processes", Array.Empty<string>()), ("relay_plain_processes_copy", ["--copy"]) })
            {
                var control = PeerProcesses.FreePort();
                var publicPort = PeerProcesses.FreePort();
                var relayProcess = peers.Start("dotnet", [relaySample, "server", "--control", $"127.0.0.1:{control}", "--ports", $"{publicPort}-{publicPort}", "--secret", "bench-secret-0123456789abcdef", "--bind", "127.0.0.1", .. extra]);
                await PeerProcesses.WaitListeningAsync(control);
                var published = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var nodeProcess = peers.StartWithOutput("dotnet", line =>
                    {
                        if (line.StartsWith("PUBLIC", StringComparison.Ordinal))
                        {
                            published.TrySetResult();
                        }
                    },
                    [relaySample, "client", "--server", $"127.0.0.1:{control}", "--node", "bench", "--secret", "bench-secret-0123456789abcdef", .. extra, $"tcp:127.0.0.1:{target.Port}"]);
                await published.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
                // Fresh processes JIT (tier-up) for the first seconds; keep that out of the CPU time per GB.
                await ThroughputAsync(publicPort, 4, null, cancellationToken);
                await ThroughputAsync(publicPort, 1, null, cancellationToken);
                results[name] = await MeasureAsync(publicPort, cancellationToken, [relayProcess.Id, nodeProcess.Id]);
                report.Note($"{name}: {results[name]}");
                foreach (var process in new[] { nodeProcess, relayProcess })
                {
                    process.Kill();
                    await process.WaitForExitAsync(cancellationToken);
                }
            }
        }
        else
        {
            report.Note("RelayEmbedding sample not built; skipping relay_plain_processes (dotnet build samples/RelayEmbedding -c Release)");
        }

        foreach (var (name, m) in results)
        {
            var pairs = new List<(string, object)>
            {
                ("config", name),
                ("single_stream_bytes_per_s", m.SingleStream),
                ("streams16_bytes_per_s", m.Aggregate16),
                ("connections_per_s", m.ConnectionsPerSecond),
                ("rtt64_p50_us", m.RttP50),
                ("rtt64_p99_us", m.RttP99),
            };
            if (!double.IsNaN(m.CpuSingle))
            {
                pairs.Add(("cpu_s_per_gb_single", m.CpuSingle));
                pairs.Add(("cpu_s_per_gb_streams16", m.Cpu16));
                if (name != "socat" && results.TryGetValue("socat", out var socat) && !double.IsNaN(socat.CpuSingle))
                {
                    pairs.Add(("cpu_ratio_vs_socat_single", m.CpuSingle / socat.CpuSingle));
                    pairs.Add(("cpu_ratio_vs_socat_streams16", m.Cpu16 / socat.Cpu16));
                }
            }

            if (name.StartsWith("relay", StringComparison.Ordinal))
            {
                foreach (var peer in new[] { "direct", "socat", "ssh" })
                {
                    if (results.TryGetValue(peer, out var p))
                    {
                        pairs.Add(($"ratio_vs_{peer}_single", m.SingleStream / p.SingleStream));
                        pairs.Add(($"ratio_vs_{peer}_streams16", m.Aggregate16 / p.Aggregate16));
                        pairs.Add(($"ratio_vs_{peer}_connections", m.ConnectionsPerSecond / p.ConnectionsPerSecond));
                        pairs.Add(($"ratio_vs_{peer}_rtt", m.RttP50 / p.RttP50));
                    }
                }
            }

            report.Result([.. pairs]);
        }

        await MeasureMemoryAsync(report, cancellationToken);
    }

    /// <summary>Throughput, setup rate and latency; <c>Cpu*</c>: CPU seconds the forwarder's processes spent per GB moved (NaN when in-process).</summary>
    private sealed record Metrics(double SingleStream, double Aggregate16, double ConnectionsPerSecond, double RttP50, double RttP99, double CpuSingle, double Cpu16)
    {
        public override string ToString() =>
            string.Create(CultureInfo.InvariantCulture, $"single {SingleStream / 1e6:F0} MB/s, 16 streams {Aggregate16 / 1e6:F0} MB/s, {ConnectionsPerSecond:F0} conn/s, rtt p50 {RttP50:F0} us")
            + (double.IsNaN(CpuSingle) ? string.Empty : string.Create(CultureInfo.InvariantCulture, $", cpu {CpuSingle:F2} s/GB single, {Cpu16:F2} s/GB 16 streams"));
    }

    /// <summary>Measures a forwarder on <paramref name="port"/>; with <paramref name="cpuPids"/>, also the CPU time those processes (and their children) use per GB.</summary>
    private static async Task<Metrics> MeasureAsync(int port, CancellationToken cancellationToken, int[]? cpuPids = null)
    {
        var (single, cpuSingle) = await ThroughputAsync(port, 1, cpuPids, cancellationToken);
        var (aggregate, cpu16) = await ThroughputAsync(port, 16, cpuPids, cancellationToken);
        var connections = await ConnectionRateAsync(port, cancellationToken);
        var (p50, p99) = await LatencyAsync(port, cancellationToken);
        return new Metrics(single, aggregate, connections, p50, p99, cpuSingle, cpu16);
    }

    private static async Task<Socket> ConnectAsync(int port, byte mode, CancellationToken cancellationToken)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await s.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        await s.SendAsync(new[] { mode }, cancellationToken);
        return s;
    }

    private static async Task<(double BytesPerSecond, double CpuSecondsPerGb)> ThroughputAsync(int port, int streams, int[]? cpuPids, CancellationToken cancellationToken)
    {
        long total = 0;
        long all = 0;
        var warm = TimeSpan.FromMilliseconds(200);
        // CPU over the whole phase (connect to close, children reaped), against every byte received in it.
        var cpuBefore = cpuPids is null ? 0 : ProcessCpu.Sample(cpuPids);
        var tasks = Enumerable.Range(0, streams).Select(async _ =>
        {
            using var s = await ConnectAsync(port, (byte)'S', cancellationToken);
            var buffer = new byte[256 * 1024];
            var sw = Stopwatch.StartNew();
            long counted = 0;
            try
            {
                while (sw.Elapsed < warm + ThroughputWindow)
                {
                    var n = await s.ReceiveAsync(buffer, cancellationToken);
                    if (n == 0)
                    {
                        break;
                    }

                    Interlocked.Add(ref all, n);
                    if (sw.Elapsed >= warm)
                    {
                        counted += n;
                    }
                }
            }
            catch (SocketException ex)
            {
                Console.Error.WriteLine($"# stream to port {port} failed after {counted} bytes: {ex.SocketErrorCode}");
            }

            Interlocked.Add(ref total, counted);
            s.Close(0);
        });
        await Task.WhenAll(tasks);
        var cpuPerGb = double.NaN;
        if (cpuPids is not null)
        {
            // socat's connection processes exit when their connection closes; give the parent time to reap them.
            await Task.Delay(TimeSpan.FromMilliseconds(700), cancellationToken);
            cpuPerGb = (ProcessCpu.Sample(cpuPids) - cpuBefore) / (all / 1e9);
        }

        return (total / ThroughputWindow.TotalSeconds, cpuPerGb);
    }

    private static async Task<double> ConnectionRateAsync(int port, CancellationToken cancellationToken)
    {
        var budget = TimeSpan.FromSeconds(1);
        long count = 0;
        var sw = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, 8).Select(async _ =>
        {
            var buffer = new byte[1];
            while (sw.Elapsed < budget)
            {
                try
                {
                    using var s = await ConnectAsync(port, (byte)'E', cancellationToken);
                    await s.SendAsync(buffer, cancellationToken);
                    if (await s.ReceiveAsync(buffer, cancellationToken) == 1)
                    {
                        Interlocked.Increment(ref count);
                    }

                    s.Close(0);
                }
                catch (SocketException ex)
                {
                    // Counted as not set up; reported so a failing peer cannot hide in the rate.
                    Console.Error.WriteLine($"# connection to port {port} failed: {ex.SocketErrorCode}");
                }
            }
        });
        await Task.WhenAll(workers);
        return count / sw.Elapsed.TotalSeconds;
    }

    private static async Task<(double P50, double P99)> LatencyAsync(int port, CancellationToken cancellationToken)
    {
        using var s = await ConnectAsync(port, (byte)'E', cancellationToken);
        var payload = new byte[64];
        var reply = new byte[64];
        var samples = new List<double>();
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(0.7))
        {
            var start = Stopwatch.GetTimestamp();
            await s.SendAsync(payload, cancellationToken);
            var read = 0;
            while (read < 64)
            {
                read += await s.ReceiveAsync(reply.AsMemory(read), cancellationToken);
            }

            samples.Add(Measure.TicksToMicroseconds(Stopwatch.GetTimestamp() - start));
        }

        var sorted = samples.Skip(samples.Count / 10).Order().ToArray();
        return (Measure.Percentile(sorted, 50), Measure.Percentile(sorted, 99));
    }

    private static X509Certificate2 CreateCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=dcr-bench", key, HashAlgorithmName.SHA256);
        using var ephemeral = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pfx), null);
    }

    /// <summary>
    /// The relay runs as its own process (the RelayEmbedding sample) so its resident memory can be read from /proc:
    /// first 200 idle tunnels from in-process clients, then 10,000 idle streams through one tunnel whose node is a
    /// second sample process and whose target holds every connection open.
    /// </summary>
    private static async Task MeasureMemoryAsync(QuickReport report, CancellationToken cancellationToken)
    {
        var sample = FindSample();
        if (sample is null)
        {
            report.Note("RelayEmbedding sample not built; skipping memory (dotnet build samples/RelayEmbedding -c Release)");
            return;
        }

        await using var peers = new PeerProcesses();
        var control = PeerProcesses.FreePort();
        var idlePort = PeerProcesses.FreePort();
        var relay = peers.Start("dotnet", sample, "server", "--control", $"127.0.0.1:{control}", "--ports", $"{idlePort}-{idlePort}", "--secret", "bench-secret-0123456789abcdef", "--bind", "127.0.0.1");
        await PeerProcesses.WaitListeningAsync(control);

        const int tunnels = 200;
        var clients = new List<RelayClient>();
        try
        {
            await ConnectClientsAsync(clients, control, 1, cancellationToken);
            await Task.Delay(500, cancellationToken);
            var before = Rss(relay.Id);
            await ConnectClientsAsync(clients, control, tunnels, cancellationToken);
            await Task.Delay(1000, cancellationToken);
            var perTunnel = (Rss(relay.Id) - before) / (double)tunnels;
            foreach (var c in clients)
            {
                await c.DisposeAsync();
            }

            clients.Clear();

            // The holding target is its own process too: 10,000 streams need 40,000 sockets in all, beyond one process's fd limit.
            var holdPort = PeerProcesses.FreePort();
            peers.Start("python3", "-c", HoldScript, holdPort.ToString(CultureInfo.InvariantCulture));
            await PeerProcesses.WaitListeningAsync(holdPort);

            // Multiplexed with the issue's 10,000 streams; dedicated with 4,000, because each dedicated stream is one more
            // socket at the relay and at the node and 10,000 would pass the 20,000-descriptor limit of each process.
            foreach (var (transport, streams) in new[] { ("multiplexed", 10_000), ("dedicated", 4_000) })
            {
                var (opened, perStream, rss) = await MeasureStreamsAsync(peers, sample, holdPort, transport, streams, cancellationToken);
                report.Result(("config", "relay_memory"), ("transport", transport), ("idle_tunnels", tunnels), ("per_idle_tunnel_bytes", perTunnel),
                    ("open_streams", opened), ("per_idle_stream_bytes", perStream), ("relay_rss_bytes", rss));
            }
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Starts a fresh relay process and a node process, opens <paramref name="streams"/> idle streams through them and
    /// returns the relay's RSS growth per stream.
    /// </summary>
    private static async Task<(int Opened, double PerStream, long Rss)> MeasureStreamsAsync(
        PeerProcesses peers, string sample, int holdPort, string transport, int streams, CancellationToken cancellationToken)
    {
        var control = PeerProcesses.FreePort();
        var publicPort = PeerProcesses.FreePort();
        var relay = peers.Start("dotnet", sample, "server", "--control", $"127.0.0.1:{control}", "--ports", $"{publicPort}-{publicPort}", "--secret", "bench-secret-0123456789abcdef", "--bind", "127.0.0.1");
        var relayPid = relay.Id;
        await PeerProcesses.WaitListeningAsync(control);
        var published = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var node = peers.StartWithOutput("dotnet", line =>
            {
                if (line.StartsWith("PUBLIC", StringComparison.Ordinal))
                {
                    published.TrySetResult();
                }
            },
            sample, "client", "--server", $"127.0.0.1:{control}", "--node", "mem", "--secret", "bench-secret-0123456789abcdef",
            "--transport", transport, $"tcp:127.0.0.1:{holdPort}");
        await published.Task.WaitAsync(TimeSpan.FromSeconds(20), cancellationToken);
        await Task.Delay(500, cancellationToken);
        var sockets = new List<Socket>(streams);
        try
        {
            // Warm the path, then measure.
            for (var i = 0; i < 100; i++)
            {
                sockets.Add(await HeldConnectionAsync(publicPort, cancellationToken));
            }

            await Task.Delay(500, cancellationToken);
            var before = Rss(relayPid);
            var warm = sockets.Count;
            var sw = Stopwatch.StartNew();
            while (sockets.Count < streams && sw.Elapsed < TimeSpan.FromSeconds(20))
            {
                var batch = await Task.WhenAll(Enumerable.Range(0, Math.Min(100, streams - sockets.Count)).Select(_ => HeldConnectionAsync(publicPort, cancellationToken)));
                sockets.AddRange(batch);
            }

            await Task.Delay(1500, cancellationToken);
            var rss = Rss(relayPid);
            return (sockets.Count, (rss - before) / (double)(sockets.Count - warm), rss);
        }
        finally
        {
            foreach (var s in sockets)
            {
                s.Dispose();
            }

            foreach (var process in new[] { node, relay })
            {
                process.Kill();
                await process.WaitForExitAsync(cancellationToken);
            }
        }
    }

    private const string HoldScript = """
        import selectors, socket, sys
        sel = selectors.DefaultSelector()
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(4096); srv.setblocking(False)
        sel.register(srv, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                if key.fileobj is srv:
                    c, _ = srv.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ)
                else:
                    try:
                        data = key.fileobj.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(key.fileobj); key.fileobj.close()
        """;

    private static async Task<Socket> HeldConnectionAsync(int publicPort, CancellationToken cancellationToken)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await s.ConnectAsync(new IPEndPoint(IPAddress.Loopback, publicPort), cancellationToken);
        await s.SendAsync(new[] { (byte)'H' }, cancellationToken);
        return s;
    }

    private static async Task ConnectClientsAsync(List<RelayClient> clients, int control, int count, CancellationToken cancellationToken)
    {
        var added = new List<RelayClient>();
        for (var i = 0; i < count; i++)
        {
            var c = new RelayClient(new RelayClientOptions { ServerHost = "127.0.0.1", ServerPort = control, NodeId = $"idle-{clients.Count + i}" }, new HmacChallengeCredentials(Secret));
            await c.StartAsync(cancellationToken);
            added.Add(c);
        }

        await Task.WhenAll(added.Select(c => c.WaitUntilConnectedAsync(cancellationToken)));
        clients.AddRange(added);
    }

    private static long Rss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    private static string? FindSample()
    {
        var dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "DeCloud.slnx")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        foreach (var configuration in new[] { "Release", "Debug" })
        {
            var path = Path.Combine(dir ?? ".", "samples", "RelayEmbedding", "bin", configuration, "net10.0", "RelayEmbedding.dll");
            if (File.Exists(path))
            {
                return path;
            }
        }

        return null;
    }
}
