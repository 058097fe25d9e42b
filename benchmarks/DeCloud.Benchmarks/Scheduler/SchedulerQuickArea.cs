using System.Diagnostics;
using DeCloud.Core.Scheduling;

namespace DeCloud.Benchmarks.Scheduler;

/// <summary>
/// <c>quick scheduler</c>: at 10,000 and 100,000 nodes with every hard filter in play, one thread places
/// (decide + commit) and releases the oldest placement once 2,048 are live, so the fleet stays in a steady
/// state. Prints placements/s (the median over windows of 1,024 placements, which shrugs off the other
/// sessions that share these 2 cores; the plain mean follows), latency percentiles, bytes allocated per placement and the explanation time,
/// then the same for the naive full-scan baseline.
/// </summary>
public sealed class SchedulerQuickArea : IQuickArea
{
    public string Name => "scheduler";

    public Task RunAsync(QuickReport report, CancellationToken cancellationToken)
    {
        foreach (var nodes in new[] { 10_000, 100_000 })
        {
            var fast = Run(new SchedulerFleet(nodes, SchedulerShape.AllFilters), naive: false, TimeSpan.FromSeconds(6), cancellationToken);
            var naive = Run(new SchedulerFleet(nodes, SchedulerShape.AllFilters), naive: true, TimeSpan.FromSeconds(nodes >= 100_000 ? 6 : 3), cancellationToken);
            var explain = ExplainMs(new SchedulerFleet(nodes, SchedulerShape.Infeasible, requests: 64));
            report.Result(("config", $"nodes={nodes}"), ("impl", "indexed"), ("placements_per_s", fast.Rate), ("mean_placements_per_s", fast.MeanRate), ("p50_us", fast.P50), ("p99_us", fast.P99),
                ("p999_us", fast.P999), ("alloc_bytes_per_placement", fast.Bytes), ("refused", fast.Refused), ("explain_p50_us", explain.P50), ("explain_max_us", explain.Max),
                ("ratio_vs_naive", fast.Rate / naive.Rate));
            report.Result(("config", $"nodes={nodes}"), ("impl", "naive_full_scan"), ("placements_per_s", naive.Rate), ("mean_placements_per_s", naive.MeanRate), ("p50_us", naive.P50), ("p99_us", naive.P99),
                ("p999_us", naive.P999), ("alloc_bytes_per_placement", naive.Bytes), ("refused", naive.Refused));
        }

        return Task.CompletedTask;
    }

    private static (double Rate, double MeanRate, double P50, double P99, double P999, double Bytes, long Refused) Run(SchedulerFleet fleet, bool naive, TimeSpan budget, CancellationToken ct)
    {
        var s = fleet.Scheduler;
        var live = new ReservationId[2048];
        long placed = 0, refused = 0, n = 0;
        var samples = new List<double>(1 << 22);

        // Warm up: fill the ring once (and let tiered JIT settle).
        for (var i = 0; i < 20_000; i++)
        {
            Step(i, record: false);
        }

        var bytes0 = GC.GetAllocatedBytesForCurrentThread();
        var busy = 0L;
        var window = 0L;
        var windows = new List<double>(1 << 13);
        var wall = Stopwatch.StartNew();
        for (var i = 20_000; wall.Elapsed < budget && samples.Count < samples.Capacity && !ct.IsCancellationRequested; i++)
        {
            var dt = Step(i, record: true);
            busy += dt;
            window += dt;
            if (++n % 1024 == 0)
            {
                windows.Add(1024 / (window / (double)Stopwatch.Frequency));
                window = 0;
            }
        }

        // Both sample lists were sized up front, so everything allocated in the loop is the scheduler's.
        var bytes = (GC.GetAllocatedBytesForCurrentThread() - bytes0) / (double)Math.Max(1, n);
        windows.Sort();
        var medianWindowRate = windows.Count > 0 ? windows[windows.Count / 2] : n / (busy / (double)Stopwatch.Frequency);
        samples.Sort();
        var sorted = samples.ToArray();
        return (medianWindowRate, n / (busy / (double)Stopwatch.Frequency), Measure.Percentile(sorted, 50), Measure.Percentile(sorted, 99), Measure.Percentile(sorted, 99.9), bytes, refused);

        long Step(int i, bool record)
        {
            var req = fleet.Requests[i % fleet.Requests.Length];
            var slot = (int)(placed % live.Length);
            if (!live[slot].IsEmpty)
            {
                s.Release(live[slot]);
                live[slot] = default;
            }

            var t0 = Stopwatch.GetTimestamp();
            var r = naive ? s.PlaceFullScan(req) : s.Place(req);
            var dt = Stopwatch.GetTimestamp() - t0;
            if (record)
            {
                samples.Add(Measure.TicksToMicroseconds(dt));
            }

            if (r.Succeeded)
            {
                live[slot] = r.Reservation;
                placed++;
            }
            else
            {
                refused++;
            }

            return dt;
        }
    }

    private static (double P50, double Max) ExplainMs(SchedulerFleet fleet)
    {
        var samples = new double[fleet.Requests.Length];
        for (var i = 0; i < 16; i++)
        {
            fleet.Scheduler.Place(fleet.Requests[i]); // warm-up
        }

        for (var i = 0; i < samples.Length; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            var r = fleet.Scheduler.Place(fleet.Requests[i]);
            samples[i] = Measure.TicksToMicroseconds(Stopwatch.GetTimestamp() - t0);
            if (r.Succeeded)
            {
                throw new InvalidOperationException("The infeasible workload placed a VM.");
            }
        }

        Array.Sort(samples);
        return (Measure.Percentile(samples, 50), samples[^1]);
    }
}
