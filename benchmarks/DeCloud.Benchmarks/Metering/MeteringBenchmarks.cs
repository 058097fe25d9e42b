using BenchmarkDotNet.Attributes;
using DeCloud.Billing.Metering;

namespace DeCloud.Benchmarks.Metering;

/// <summary>One batch of 1,000 usage records: idempotent ingest and ledger posting vs plain inserts.</summary>
[MemoryDiagnoser]
public class MeteringBenchmarks : IDisposable
{
    private const int BatchSize = 1_000;
    private MeteringFixture _fixture = null!;
    private long _next;

    [GlobalSetup]
    public void Setup() => _fixture = new MeteringFixture(100);

    [GlobalCleanup]
    public void Cleanup() => _fixture.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = BatchSize)]
    public void PlainInsert() => _fixture.PlainInsert(_fixture.Records(Interlocked.Add(ref _next, BatchSize), BatchSize));

    [Benchmark(OperationsPerInvoke = BatchSize)]
    public IngestResult IdempotentIngest() => _fixture.Meter.Ingest(_fixture.Records(Interlocked.Add(ref _next, BatchSize), BatchSize));

    [Benchmark(OperationsPerInvoke = BatchSize)]
    public int LedgerPostBatch() => _fixture.Ledger.PostBatch(MeteringFixture.Postings(Interlocked.Add(ref _next, BatchSize), BatchSize));

    public void Dispose()
    {
        _fixture?.Dispose();
        GC.SuppressFinalize(this);
    }
}
