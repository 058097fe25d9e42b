using System.Diagnostics;

namespace DeCloud.Benchmarks;

/// <summary>Small helpers for quick measurements: rates over a time budget and latency percentiles.</summary>
public static class Measure
{
    /// <summary>Runs <paramref name="op"/> repeatedly for about <paramref name="budget"/>; returns operations per second.</summary>
    public static double Rate(Action op, TimeSpan budget, int batch = 1)
    {
        for (var i = 0; i < Math.Max(1, batch); i++) { op(); }
        var sw = Stopwatch.StartNew();
        long n = 0;
        while (sw.Elapsed < budget)
        {
            for (var i = 0; i < batch; i++) { op(); }
            n += batch;
        }

        return n / sw.Elapsed.TotalSeconds;
    }

    /// <summary>Percentile (0..100) of sorted samples.</summary>
    public static double Percentile(double[] sorted, double p)
    {
        if (sorted.Length == 0) { return double.NaN; }
        var idx = (int)Math.Ceiling(p / 100.0 * sorted.Length) - 1;
        return sorted[Math.Clamp(idx, 0, sorted.Length - 1)];
    }

    /// <summary>Microseconds from a <see cref="Stopwatch"/> tick count.</summary>
    public static double TicksToMicroseconds(long ticks) => ticks * 1_000_000.0 / Stopwatch.Frequency;
}
