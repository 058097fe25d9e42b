using BenchmarkDotNet.Attributes;
using DeCloud.Core.Scheduling;

namespace DeCloud.Benchmarks.Scheduler;

/// <summary>
/// One placement (decide + commit) per operation, the oldest of 2,048 live placements released first so
/// the fleet stays in a steady state; the naive full scan over every node is the baseline.
/// </summary>
[MemoryDiagnoser]
public class SchedulerBenchmarks
{
    private SchedulerFleet _fleet = null!;
    private ReservationId[] _live = null!;
    private int _i;

    [Params(1_000, 10_000, 100_000)]
    public int Nodes { get; set; }

    [ParamsAllValues]
    public SchedulerShape Shape { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _fleet = new SchedulerFleet(Nodes, Shape);
        _live = new ReservationId[2048];
        _i = 0;
    }

    [Benchmark(Baseline = true)]
    public bool NaiveFullScan() => Step(naive: true);

    [Benchmark]
    public bool Indexed() => Step(naive: false);

    private bool Step(bool naive)
    {
        var slot = _i & (_live.Length - 1);
        if (!_live[slot].IsEmpty)
        {
            _fleet.Scheduler.Release(_live[slot]);
        }

        var request = _fleet.Requests[_i++ % _fleet.Requests.Length];
        var r = naive ? _fleet.Scheduler.PlaceFullScan(request) : _fleet.Scheduler.Place(request);
        _live[slot] = r.Reservation;
        return r.Succeeded;
    }
}

/// <summary>The same at 1,000,000 nodes; for the full run only (<c>--filter '*MillionNode*'</c>): setup alone takes a while.</summary>
[MemoryDiagnoser]
[BenchmarkCategory("full")]
public class SchedulerMillionNodeBenchmarks
{
    private readonly SchedulerBenchmarks _inner = new() { Nodes = 1_000_000 };

    [Params(SchedulerShape.Uniform, SchedulerShape.AllFilters, SchedulerShape.GpuScarce, SchedulerShape.Infeasible)]
    public SchedulerShape Shape { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _inner.Shape = Shape;
        _inner.Setup();
    }

    [Benchmark(Baseline = true)]
    public bool NaiveFullScan() => _inner.NaiveFullScan();

    [Benchmark]
    public bool Indexed() => _inner.Indexed();
}
