namespace DeCloud.Benchmarks.Tokens;

/// <summary>
/// <c>quick tokens</c>: full connect-token validations per second on one core (parse, key lookup,
/// signature, claims, revocation against 11,000 entries) against a bare Ed25519 verification of a
/// message of the same length, cache-hit authorizations per second (with audit), and SIWE
/// verifications per second (parse, checks, secp256k1 recovery).
/// </summary>
public sealed class TokensQuickArea : IQuickArea
{
    public string Name => "tokens";

    public Task RunAsync(QuickReport report, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(report);
        using var setup = new TokenBenchmarkSetup();
        if (!setup.Validate() || !setup.CacheHit() || !setup.Siwe() || !setup.BareVerify())
        {
            throw new InvalidOperationException("benchmark setup does not validate");
        }

        // The machine is shared: wall-clock rates swing with other load, so each rate is also given per
        // CPU-second this process used (one thread busy, so ~one core); the ratio uses CPU-time rates.
        var budget = TimeSpan.FromSeconds(4);
        report.Note($"token length {setup.Token.Length} chars; one thread; {budget.TotalSeconds:F0} s per measurement, interleaved twice");
        Rates bare = default, validate = default;
        for (var round = 0; round < 2; round++)
        {
            bare = Rates.Max(bare, Rates.Measure(() => setup.BareVerify(), budget, batch: 64));
            validate = Rates.Max(validate, Rates.Measure(() => setup.Validate(), budget, batch: 64));
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            setup.Validate();
        }

        var allocated = (GC.GetAllocatedBytesForCurrentThread() - before) / 10_000.0;
        var cacheHits = Rates.Measure(() => setup.CacheHit(), TimeSpan.FromSeconds(3), batch: 1024);
        var siwe = Rates.Measure(() => setup.Siwe(), TimeSpan.FromSeconds(5), batch: 8);
        var siweParse = Rates.Measure(() => setup.SiweParse(), TimeSpan.FromSeconds(2), batch: 64);
        var siweRecover = Rates.Measure(() => setup.SiweRecover(), TimeSpan.FromSeconds(3), batch: 8);

        report.Result(
            ("config", "single_thread"),
            ("token_bytes", setup.Token.Length),
            ("validations_per_s", validate.Wall),
            ("validations_per_cpu_s", validate.Cpu),
            ("ed25519_verify_per_s", bare.Wall),
            ("ed25519_verify_per_cpu_s", bare.Cpu),
            ("ratio_vs_ed25519", validate.Cpu / bare.Cpu),
            ("ratio_vs_ed25519_wall", validate.Wall / bare.Wall),
            ("validation_alloc_bytes", allocated),
            ("cache_hits_per_s", cacheHits.Wall),
            ("cache_hits_per_cpu_s", cacheHits.Cpu),
            ("siwe_verifications_per_s", siwe.Wall),
            ("siwe_verifications_per_cpu_s", siwe.Cpu),
            ("siwe_parse_per_cpu_s", siweParse.Cpu),
            ("nethereum_recover_per_cpu_s", siweRecover.Cpu));
        return Task.CompletedTask;
    }
}

/// <summary>Operations per wall-clock second and per CPU-second used by this process.</summary>
internal readonly record struct Rates(double Wall, double Cpu)
{
    public static Rates Max(Rates a, Rates b) => new(Math.Max(a.Wall, b.Wall), Math.Max(a.Cpu, b.Cpu));

    public static Rates Measure(Action op, TimeSpan budget, int batch)
    {
        for (var i = 0; i < batch; i++)
        {
            op();
        }

        using var process = System.Diagnostics.Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        long n = 0;
        while (sw.Elapsed < budget)
        {
            for (var i = 0; i < batch; i++)
            {
                op();
            }

            n += batch;
        }

        var wall = sw.Elapsed.TotalSeconds;
        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpu0).TotalSeconds;
        return new Rates(n / wall, n / Math.Max(cpu, 1e-9));
    }
}
