using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net.Http.Json;
using System.Security.Cryptography;
using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;
using DeCloud.Orchestrator;
using DeCloud.Orchestrator.Vms;
using DeCloud.Protocol;
using DeCloud.Protocol.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Nethereum.Signer;

namespace DeCloud.Benchmarks.Orchestrator;

/// <summary>
/// <c>quick orchestrator</c>: an in-process orchestrator with 1,000 simulated agents connected over gRPC
/// (each acknowledges commands at once, no VMs). Measures VM creates per second through the HTTP API
/// (request accepted, and create-to-ack completion), the same placement + store + dispatch path called
/// in process without HTTP (the peer), Core's scheduler alone on the same inventory (dry runs), and
/// heartbeats per second over gRPC.
/// </summary>
public sealed class OrchestratorQuick : IQuickArea
{
    private const int Agents = 1000;
    private const int Creates = 3000;
    private const int Concurrency = 32;

    public string Name => "orchestrator";

    public async Task RunAsync(QuickReport report, CancellationToken cancellationToken)
    {
        var dir = Directory.CreateTempSubdirectory("dch-bench-").FullName;
        try
        {
            await RunInAsync(dir, report, cancellationToken);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task RunInAsync(string dir, QuickReport report, CancellationToken ct)
    {
        await using var app = OrchestratorApplication.Create(
        [
            "--Orchestrator:ApiUrl=http://127.0.0.1:0", "--Orchestrator:AgentUrl=http://127.0.0.1:0",
            "--Orchestrator:DataDirectory=" + dir, "--Orchestrator:HeartbeatInterval=00:00:05", "--Orchestrator:OfflineAfter=00:05:00",
            "--Logging:LogLevel:Default=Error",
        ]);
        await app.StartAsync(ct);
        var addresses = OrchestratorApplication.Addresses(app);

        long heartbeats = 0, acks = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == OrchestratorMetrics.MeterName && i.Name is "decloud.orchestrator.heartbeats" or "decloud.orchestrator.commands.acks")
            {
                l.EnableMeasurementEvents(i);
            }
        };
        listener.SetMeasurementEventCallback<long>((i, v, _, _) =>
        {
            if (i.Name == "decloud.orchestrator.heartbeats") { Interlocked.Add(ref heartbeats, v); } else { Interlocked.Add(ref acks, v); }
        });
        listener.Start();

        // 1,000 agents, each one gRPC stream, multiplexed over a few HTTP/2 connections.
        using var channel = GrpcChannel.ForAddress(addresses.Agents, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true },
        });
        var client = new AgentControl.AgentControlClient(channel);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var sw = Stopwatch.StartNew();
        var agents = new List<SimAgent>(Agents);
        for (var i = 0; i < Agents; i++)
        {
            agents.Add(new SimAgent(client, i, stop.Token));
        }

        await Task.WhenAll(agents.Select(a => a.Registered));
        report.Note($"{Agents} simulated agents registered over gRPC in {sw.Elapsed.TotalSeconds:F1} s");

        // Sign in one user.
        using var http = new HttpClient { BaseAddress = addresses.Api };
        var user = EthECKey.GenerateKey();
        var nonce = await (await http.PostAsJsonAsync("api/v1/auth/nonce", new { address = user.GetPublicAddress() }, ct)).Content.ReadFromJsonAsync<NonceDto>(ct);
        var session = await (await http.PostAsJsonAsync("api/v1/auth/verify", new { message = nonce!.Message, signature = new EthereumMessageSigner().EncodeUTF8AndSign(nonce.Message, user) }, ct)).Content.ReadFromJsonAsync<SessionDto>(ct);
        http.DefaultRequestHeaders.Authorization = new("Bearer", session!.Token);

        // VM creates through the HTTP API, 32 in flight.
        var ackBase = Interlocked.Read(ref acks);
        sw.Restart();
        var next = 0;
        var failures = 0;
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= Creates)
            {
                using var r = await http.PostAsJsonAsync("api/v1/vms", new { name = "b", computePoints = 1, memoryMiB = 64, storageGiB = 1, qualityTier = "Burstable" }, ct);
                if (!r.IsSuccessStatusCode) { Interlocked.Increment(ref failures); }
            }
        }));
        var accepted = sw.Elapsed;
        while (Interlocked.Read(ref acks) - ackBase < Creates - failures && sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(5, ct);
        }

        var acked = sw.Elapsed;
        var ackedCount = Interlocked.Read(ref acks) - ackBase;

        // The same placement + SQLite + dispatch path in process, without HTTP (the peer).
        var vms = app.Services.GetRequiredService<VmService>();
        var owner = WalletAddress.Parse(user.GetPublicAddress());
        var request = new VmRequest("p", new Resources(1, 64, 1), QualityTier.Burstable, BandwidthTier.Standard, null, "debian-12");
        var inproc = Stopwatch.StartNew();
        var inprocCount = 0;
        while (inproc.Elapsed < TimeSpan.FromSeconds(3) && inprocCount < Creates)
        {
            vms.Create(owner, request);
            inprocCount++;
        }

        var inprocRate = inprocCount / inproc.Elapsed.TotalSeconds;

        // Core's scheduler alone on the orchestrator's own inventory (1,000 nodes, thousands of VMs): dry-run decisions.
        var scheduler = app.Services.GetRequiredService<NodePlacement>().Scheduler;
        var dry = new PlacementRequest { VmId = VmId.New(), Resources = request.Resources, QualityTier = request.QualityTier };
        var decide = Stopwatch.StartNew();
        var decisions = 0;
        while (decide.Elapsed < TimeSpan.FromSeconds(1))
        {
            for (var i = 0; i < 1000; i++)
            {
                scheduler.Place(dry, PlacementMode.DryRun);
            }

            decisions += 1000;
        }

        var schedulerRate = decisions / decide.Elapsed.TotalSeconds;
        var httpRate = (Creates - failures) / accepted.TotalSeconds;
        report.Result(("config", $"agents={Agents},creates={Creates},concurrency={Concurrency}"), ("http_creates_per_s", httpRate),
            ("created_to_acked_per_s", ackedCount / acked.TotalSeconds), ("acked", ackedCount), ("failed", failures),
            ("inproc_creates_per_s", inprocRate), ("ratio_vs_inproc", httpRate / inprocRate),
            ("scheduler_dry_run_places_per_s", schedulerRate), ("inproc_ratio_vs_scheduler", inprocRate / schedulerRate));

        // Heartbeats: every agent sends as fast as its stream allows for 3 s.
        var hbBase = Interlocked.Read(ref heartbeats);
        sw.Restart();
        using var hbStop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        await Task.WhenAll(agents.Select(a => a.HeartbeatFloodAsync(hbStop.Token)));
        var hbElapsed = sw.Elapsed;
        await Task.Delay(200, ct);
        var hbCount = Interlocked.Read(ref heartbeats) - hbBase;
        report.Result(("config", $"agents={Agents},vms_per_heartbeat=0"), ("heartbeats_per_s", hbCount / hbElapsed.TotalSeconds), ("heartbeats", hbCount));

        await stop.CancelAsync();
        foreach (var a in agents) { a.Dispose(); }
        await app.StopAsync(CancellationToken.None);
    }

    private sealed record NonceDto(string Nonce, string Message);

    private sealed record SessionDto(string Token);

    /// <summary>A gRPC agent that registers and acknowledges every command at once.</summary>
    private sealed class SimAgent : IDisposable
    {
        private readonly AsyncDuplexStreamingCall<AgentMessage, OrchestratorMessage> _call;
        private readonly SemaphoreSlim _write = new(1, 1);
        private readonly TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private ulong _seq;

        public SimAgent(AgentControl.AgentControlClient client, int index, CancellationToken ct)
        {
            _call = client.Connect(cancellationToken: ct);
            _ = RunAsync(index, ct);
        }

        public Task Registered => _registered.Task;

        public async Task HeartbeatFloodAsync(CancellationToken ct)
        {
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    await SendAsync(new AgentMessage { Heartbeat = new Heartbeat { Sequence = ++_seq, Used = new Capacity() } }, ct);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or RpcException)
            {
                // The 3 s window ended in the middle of a write.
            }
        }

        public void Dispose()
        {
            _call.Dispose();
            _write.Dispose();
        }

        private async Task RunAsync(int index, CancellationToken ct)
        {
            try
            {
                var key = EthECKey.GenerateKey();
                var wallet = WalletAddress.Parse(key.GetPublicAddress());
                var machine = "dch-sim-" + index;
                var r = new Register
                {
                    NodeId = NodeId.FromMachine(machine, wallet).Value,
                    OperatorWallet = wallet.ToString(),
                    MachineId = machine,
                    IssuedAtUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
                    Nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)),
                    Capacity = new Capacity { ComputePoints = 64, MemoryMib = 256 * 1024, StorageGib = 4096 },
                };
                r.Signature = new EthereumMessageSigner().EncodeUTF8AndSign(RegistrationText.For(r), key);
                await SendAsync(new AgentMessage { Register = r }, ct);
                while (await _call.ResponseStream.MoveNext(ct))
                {
                    var m = _call.ResponseStream.Current;
                    if (m.BodyCase == OrchestratorMessage.BodyOneofCase.Registered)
                    {
                        _registered.TrySetResult();
                    }
                    else if (m.BodyCase == OrchestratorMessage.BodyOneofCase.Command)
                    {
                        await SendAsync(new AgentMessage { Ack = new CommandAck { CommandId = m.Command.CommandId, Sequence = m.Command.Sequence, Status = AckStatus.Succeeded } }, ct);
                    }
                }
            }
            catch (Exception ex) when (ex is RpcException or OperationCanceledException or ObjectDisposedException)
            {
                _registered.TrySetException(ex);
            }
        }

        private async Task SendAsync(AgentMessage m, CancellationToken ct)
        {
            await _write.WaitAsync(ct);
            try
            {
                await _call.RequestStream.WriteAsync(m, ct);
            }
            finally
            {
                _write.Release();
            }
        }
    }
}
