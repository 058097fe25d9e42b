using System.Diagnostics;

namespace DeCloud.Benchmarks.Heartbeats;

/// <summary>
/// <c>quick heartbeats</c>: heartbeats persisted per second on SQLite for 10,000 registered nodes through
/// <see cref="DeCloud.Core.Registry.NodeRegistry.RecordHeartbeatAsync"/> (group commit: one transaction per
/// batch, the caller's await completes when its batch is durable), against the naive baseline of one
/// transaction per heartbeat from the same number of concurrent callers, in the same run. Besides the
/// rate it reports the process CPU time per heartbeat, which stays meaningful on a shared, overloaded machine.
/// </summary>
public sealed class HeartbeatsQuickArea : IQuickArea
{
    private const int Nodes = 10_000;
    private static readonly int[] Concurrency = [256, 1024];
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(6);

    /// <inheritdoc />
    public string Name => "heartbeats";

    /// <inheritdoc />
    public async Task RunAsync(QuickReport report, CancellationToken cancellationToken)
    {
        var setup = Stopwatch.StartNew();
        await using var bench = await HeartbeatBench.CreateAsync(Nodes);
        report.Note($"registered {Nodes} nodes in {setup.Elapsed.TotalSeconds:F1} s");


        foreach (var concurrency in Concurrency)
        {
            var naive = await DriveAsync(bench, concurrency, (node, i) => bench.NaiveAsync(node, i), cancellationToken);
            var batchesBefore = bench.Registry.HeartbeatBatches;
            var grouped = await DriveAsync(bench, concurrency, async (node, i) => await bench.Registry.RecordHeartbeatAsync(HeartbeatBench.Beat(node, i)), cancellationToken);
            var batches = bench.Registry.HeartbeatBatches - batchesBefore;
            report.Result(("nodes", Nodes), ("concurrency", concurrency), ("writer", "naive_tx_per_heartbeat"),
                ("heartbeats_per_s", naive.Rate), ("p50_us", naive.P50), ("p99_us", naive.P99), ("cpu_us_per_heartbeat", naive.CpuUs));
            report.Result(("nodes", Nodes), ("concurrency", concurrency), ("writer", "group_commit"),
                ("heartbeats_per_s", grouped.Rate), ("p50_us", grouped.P50), ("p99_us", grouped.P99), ("cpu_us_per_heartbeat", grouped.CpuUs),
                ("heartbeats_per_tx", grouped.Count / (double)Math.Max(1, batches)), ("ratio_vs_naive", grouped.Rate / naive.Rate));
        }
    }

    private static async Task<(double Rate, double P50, double P99, long Count, double CpuUs)> DriveAsync(
        HeartbeatBench bench, int concurrency, Func<Core.Model.NodeId, int, Task> send, CancellationToken cancellationToken)
    {
        var latencies = new List<double>[concurrency];
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            var mine = latencies[w] = new List<double>(4096);
            for (var i = w; clock.Elapsed < Budget && !cancellationToken.IsCancellationRequested; i += concurrency)
            {
                var start = Stopwatch.GetTimestamp();
                await send(bench.Nodes[i % bench.Nodes.Length], i);
                mine.Add(Measure.TicksToMicroseconds(Stopwatch.GetTimestamp() - start));
            }
        }, cancellationToken)).ToArray();
        await Task.WhenAll(workers);
        var elapsed = clock.Elapsed.TotalSeconds;
        var cpuUs = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMicroseconds;
        var all = latencies.SelectMany(l => l).Order().ToArray();
        return (all.Length / elapsed, Measure.Percentile(all, 50), Measure.Percentile(all, 99), all.Length, cpuUs / Math.Max(1, all.Length));
    }
}
