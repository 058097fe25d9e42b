using BenchmarkDotNet.Attributes;

namespace DeCloud.Benchmarks.Tokens;

/// <summary>Connect-token validation, cache hits and SIWE against a bare Ed25519 verification (the baseline).</summary>
[MemoryDiagnoser]
public class TokenValidationBenchmarks : IDisposable
{
    private TokenBenchmarkSetup _setup = null!;

    [GlobalSetup]
    public void Setup() => _setup = new TokenBenchmarkSetup();

    [GlobalCleanup]
    public void Cleanup() => _setup.Dispose();

    [Benchmark(Baseline = true)]
    public bool Ed25519Verify() => _setup.BareVerify();

    [Benchmark]
    public bool ValidateConnectToken() => _setup.Validate();

    [Benchmark]
    public bool CacheHit() => _setup.CacheHit();

    [Benchmark]
    public bool SiweVerify() => _setup.Siwe();

    public void Dispose()
    {
        _setup?.Dispose();
        GC.SuppressFinalize(this);
    }
}
