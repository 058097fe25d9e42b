using BenchmarkDotNet.Attributes;

namespace DeCloud.Benchmarks.Heartbeats;

/// <summary>1,000 concurrent heartbeats to 1,000 registered nodes: group commit vs one transaction each.</summary>
[MemoryDiagnoser]
public class HeartbeatBenchmarks
{
    private const int Heartbeats = 1000;
    private HeartbeatBench _bench = null!;
    private int _round;

    [GlobalSetup]
    public async Task SetupAsync() => _bench = await HeartbeatBench.CreateAsync(Heartbeats);

    [GlobalCleanup]
    public async Task CleanupAsync() => await _bench.DisposeAsync();

    [Benchmark(Baseline = true, OperationsPerInvoke = Heartbeats)]
    public Task NaiveTransactionPerHeartbeat()
    {
        var round = _round++;
        return Task.WhenAll(_bench.Nodes.Select(n => Task.Run(() => _bench.NaiveAsync(n, round))));
    }

    [Benchmark(OperationsPerInvoke = Heartbeats)]
    public Task GroupCommit()
    {
        var round = _round++;
        return Task.WhenAll(_bench.Nodes.Select(n => _bench.Registry.RecordHeartbeatAsync(HeartbeatBench.Beat(n, round))));
    }
}
