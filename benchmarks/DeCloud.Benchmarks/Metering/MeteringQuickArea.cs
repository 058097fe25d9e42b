using System.Diagnostics;

namespace DeCloud.Benchmarks.Metering;

/// <summary>
/// quick metering: usage records ingested per second with idempotency (INSERT .. ON CONFLICT DO NOTHING
/// on the record id, in transactions of one batch) and ledger postings per second, each against plain
/// inserts of the same rows without keys in the same run; then a duplicate re-ingest and an accrual pass.
/// </summary>
public sealed class MeteringQuickArea : IQuickArea
{
    private const int Vms = 1_000;
    private const int Batch = 10_000;
    private const int Records = 200_000;
    private const int Postings = 100_000;

    public string Name => "metering";

    public Task RunAsync(QuickReport report, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(report);
        using var f = new MeteringFixture(Vms);
        report.Note($"{Vms} placed VMs; SQLite WAL, synchronous=NORMAL; batches of {Batch} records per transaction");

        // Warm up both paths (JIT, page cache) on rows that are not measured.
        f.Meter.Ingest(f.Records(Records, 2_000));
        f.PlainInsert(f.Records(Records, 2_000));

        var batches = Enumerable.Range(0, Records / Batch).Select(b => f.Records((long)b * Batch, Batch)).ToArray();
        var plain = Time(() => { foreach (var b in batches) { f.PlainInsert(b); } });
        long accepted = 0;
        var plainCpu = LastCpuSeconds;
        var idem = Time(() => { foreach (var b in batches) { accepted += f.Meter.Ingest(b).Accepted; } });
        var idemCpu = LastCpuSeconds;
        long duplicates = 0;
        var dup = Time(() => { foreach (var b in batches) { duplicates += f.Meter.Ingest(b).Duplicates; } });
        if (accepted != Records || duplicates != Records)
        {
            throw new InvalidOperationException($"ingest accepted {accepted} and saw {duplicates} duplicates of {Records} records");
        }

        report.Result(("config", "ingest"), ("batch", Batch), ("records", Records),
            ("records_per_s", Records / idem), ("plain_insert_per_s", Records / plain), ("ratio_vs_plain_insert", plain / idem),
            ("records_per_cpu_s", Records / idemCpu), ("plain_insert_per_cpu_s", Records / plainCpu));
        report.Result(("config", "reingest_duplicates"), ("batch", Batch), ("records", Records),
            ("records_per_s", Records / dup), ("ratio_vs_plain_insert", plain / dup));

        f.Ledger.PostBatch(MeteringFixture.Postings(50_000_000, 2_000));
        f.PlainPost(MeteringFixture.Postings(50_000_000, 2_000));
        var postingBatches = Enumerable.Range(0, Postings / Batch).Select(b => MeteringFixture.Postings((long)b * Batch, Batch)).ToArray();
        var plainPost = Time(() => { foreach (var b in postingBatches) { f.PlainPost(b); } });
        var plainPostCpu = LastCpuSeconds;
        var post = Time(() => { foreach (var b in postingBatches) { f.Ledger.PostBatch(b); } });
        var postCpu = LastCpuSeconds;
        var repost = Time(() => { foreach (var b in postingBatches) { f.Ledger.PostBatch(b); } });
        report.Result(("config", "ledger_post"), ("batch", Batch), ("postings", Postings),
            ("postings_per_s", Postings / post), ("plain_insert_per_s", Postings / plainPost), ("ratio_vs_plain_insert", plainPost / post),
            ("repost_noop_per_s", Postings / repost), ("postings_per_cpu_s", Postings / postCpu), ("plain_insert_per_cpu_s", Postings / plainPostCpu));

        var sw = Stopwatch.StartNew();
        var accrual = f.Meter.Accrue();
        sw.Stop();
        report.Result(("config", "accrual"), ("vms", Vms), ("hours_per_vm", (Records + 2_000) / Vms * 60 / 3600),
            ("postings", accrual.Postings), ("postings_per_s", accrual.Postings / sw.Elapsed.TotalSeconds));
        if (f.Ledger.SumOfAllEntries() != 0)
        {
            throw new InvalidOperationException("the ledger does not sum to zero");
        }

        return Task.CompletedTask;
    }

    private static double Time(Action action)
    {
        var sw = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        action();
        LastCpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        return sw.Elapsed.TotalSeconds;
    }

    /// <summary>CPU seconds the last <see cref="Time"/> used: on a loaded shared machine, rates per CPU second vary less than wall-clock ones.</summary>
    private static double LastCpuSeconds { get; set; }
}
