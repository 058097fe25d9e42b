using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net.Http.Json;
using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;
using DeCloud.Orchestrator;
using DeCloud.Orchestrator.Vms;
using Microsoft.Extensions.DependencyInjection;

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
        var ct = cancellationToken;
        var sw = Stopwatch.StartNew();
        await using var host = await OrchestratorBenchHost.StartAsync(Agents, pointsPerAgent: 64, ct);
        var app = host.App;
        var agents = host.Agents;
        var http = host.Http;
        report.Note($"{Agents} simulated agents registered over gRPC in {sw.Elapsed.TotalSeconds:F1} s");

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
        var owner = host.User;
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
    }
}
