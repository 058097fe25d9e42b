using System.Net.Http.Json;
using BenchmarkDotNet.Attributes;
using DeCloud.Core.Model;
using DeCloud.Core.Scheduling;
using DeCloud.Orchestrator.Storage;
using DeCloud.Orchestrator.Vms;
using DeCloud.Protocol.V1;
using Microsoft.Extensions.DependencyInjection;

namespace DeCloud.Benchmarks.Orchestrator;

/// <summary>
/// The orchestrator's hot paths against an in-process orchestrator with 200 simulated gRPC agents (acks at once, no
/// VMs): a VM create through the HTTP API (sign-in session, validation, placement, SQLite, dispatch; the response),
/// the same create called in process without HTTP, and one heartbeat's handling (the store write of its VM states).
/// Baseline: Core's scheduler deciding a placement in memory on the same inventory (a dry run), the floor every
/// create pays. Created VMs stay (the agents have room for ~200k), so later iterations see a fuller store.
/// </summary>
[MemoryDiagnoser]
public class OrchestratorBenchmarks
{
    private const int AgentCount = 200;
    private OrchestratorBenchHost _host = null!;
    private VmScheduler _scheduler = null!;
    private VmService _vms = null!;
    private OrchestratorStore _store = null!;
    private PlacementRequest _dryRun = null!;
    private VmRequest _request = null!;
    private VmStatus[] _statuses = null!;
    private NodeId _node;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _host = OrchestratorBenchHost.StartAsync(AgentCount, pointsPerAgent: 4096).GetAwaiter().GetResult();
        var services = _host.App.Services;
        _scheduler = services.GetRequiredService<NodePlacement>().Scheduler;
        _vms = services.GetRequiredService<VmService>();
        _store = services.GetRequiredService<OrchestratorStore>();
        _request = new VmRequest("bench", new Resources(1, 64, 1), QualityTier.Burstable, BandwidthTier.Standard, null, "debian-12");
        _dryRun = new PlacementRequest { VmId = VmId.New(), Resources = _request.Resources, QualityTier = _request.QualityTier };
        _node = _host.Agents[0].NodeId;
        _statuses = [.. Enumerable.Range(0, 8).Select(_ => new VmStatus { VmId = VmId.New().ToString(), State = VmPowerState.Running })];
    }

    [GlobalCleanup]
    public void Cleanup() => _host.DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Core's scheduler alone: one in-memory placement decision (dry run) over 200 nodes.</summary>
    [Benchmark(Baseline = true)]
    public bool SchedulerDryRun() => _scheduler.Place(_dryRun, PlacementMode.DryRun).Succeeded;

    /// <summary>POST /api/v1/vms on loopback, awaited to its 201.</summary>
    [Benchmark]
    public async Task<int> HttpCreateVm()
    {
        using var r = await _host.Http.PostAsJsonAsync("api/v1/vms", new CreateBody("b", 1, 64, 1, "Burstable"));
        return (int)r.StatusCode;
    }

    /// <summary>The create behind the endpoint, in process: placement hold, SQLite transaction with the command, commit, dispatch.</summary>
    [Benchmark]
    public bool InProcessCreateVm() => _vms.Create(_host.User, _request).Outcome == VmOutcome.Ok;

    /// <summary>One heartbeat's handling: its resource use and 8 VM states through Core's registry (group commit) and the VM details.</summary>
    [Benchmark]
    public async Task<int> HeartbeatHandled()
    {
        await _store.RecordHeartbeatAsync(_node, new Resources(8, 512, 8), _statuses, DateTimeOffset.UnixEpoch.AddSeconds(++_next));
        return _next;
    }

    private sealed record CreateBody(string Name, int ComputePoints, long MemoryMiB, long StorageGiB, string QualityTier);
}
