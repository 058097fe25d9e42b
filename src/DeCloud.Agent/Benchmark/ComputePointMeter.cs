using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using DeCloud.Core.Model;

namespace DeCloud.Agent.Benchmark;

/// <summary>The outcome of a CPU benchmark: a score (events per second over all cores) and the points it normalizes to.</summary>
internal sealed record ComputeMeasurement(string Method, double Score, int Threads, int ComputePoints);

/// <summary>
/// Measures a node's CPU: <c>sysbench cpu</c> (Debian's sysbench) when installed, else a built-in
/// equivalent of the same workload (trial-division primality up to 10,000 per event). The score in
/// events/s over all cores is turned into compute points by Core's <see cref="ComputePointNormalizer"/>.
/// </summary>
internal static partial class ComputePointMeter
{
    private const int PrimeLimit = 10_000;

    public static async Task<ComputeMeasurement> MeasureAsync(string method, TimeSpan duration, ComputePointNormalizer normalizer, TimeProvider time, CancellationToken cancellationToken)
    {
        var threads = Environment.ProcessorCount;
        if (method != "builtin")
        {
            var sysbench = FindSysbench();
            if (sysbench is not null)
            {
                var score = await RunSysbenchAsync(sysbench, threads, duration, cancellationToken).ConfigureAwait(false);
                if (score is { } s)
                {
                    return new ComputeMeasurement("sysbench", s, threads, Math.Max(1, normalizer.Normalize(s)));
                }
            }

            if (method == "sysbench")
            {
                throw new InvalidOperationException("Benchmark=sysbench but sysbench is not installed or printed no 'events per second' (apt-get install sysbench).");
            }
        }

        var builtin = await Task.Run(() => RunBuiltin(threads, duration, time, cancellationToken), cancellationToken).ConfigureAwait(false);
        return new ComputeMeasurement("builtin", builtin, threads, Math.Max(1, normalizer.Normalize(builtin)));
    }

    /// <summary>One event of the workload: counts primes up to <see cref="PrimeLimit"/> by trial division.</summary>
    internal static int PrimeEvent()
    {
        var count = 0;
        for (var c = 3; c < PrimeLimit; c++)
        {
            var prime = true;
            for (var l = 2; l * l <= c; l++)
            {
                if (c % l == 0)
                {
                    prime = false;
                    break;
                }
            }

            if (prime)
            {
                count++;
            }
        }

        return count;
    }

    internal static double RunBuiltin(int threads, TimeSpan duration, TimeProvider time, CancellationToken cancellationToken)
    {
        var start = time.GetTimestamp();
        long events = 0;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads, CancellationToken = cancellationToken }, _ =>
        {
            long local = 0;
            var sink = 0;
            while (time.GetElapsedTime(start) < duration)
            {
                sink += PrimeEvent();
                local++;
            }

            GC.KeepAlive(sink);
            Interlocked.Add(ref events, local);
        });
        var seconds = time.GetElapsedTime(start).TotalSeconds;
        return events / Math.Max(seconds, 1e-3);
    }

    internal static double? ParseSysbench(string output)
    {
        var m = EventsPerSecond().Match(output);
        return m.Success && double.TryParse(m.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : null;
    }

    private static async Task<double?> RunSysbenchAsync(string path, int threads, TimeSpan duration, CancellationToken cancellationToken)
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(duration.TotalSeconds));
        var psi = new ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "cpu", "--cpu-max-prime=" + PrimeLimit.ToString(CultureInfo.InvariantCulture), "--threads=" + threads.ToString(CultureInfo.InvariantCulture), "--time=" + seconds.ToString(CultureInfo.InvariantCulture), "run" })
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi);
        if (p is null)
        {
            return null;
        }

        var stdout = p.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = p.StandardError.ReadToEndAsync(cancellationToken);
        await p.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        var output = await stdout.ConfigureAwait(false);
        _ = await stderr.ConfigureAwait(false);
        return p.ExitCode == 0 ? ParseSysbench(output) : null;
    }

    private static string? FindSysbench()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':'))
        {
            var candidate = Path.Combine(dir, "sysbench");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    [GeneratedRegex(@"events per second:\s*([0-9]+(?:\.[0-9]+)?)")]
    private static partial Regex EventsPerSecond();
}
