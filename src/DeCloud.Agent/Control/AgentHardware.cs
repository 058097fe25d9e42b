using System.Runtime.InteropServices;

namespace DeCloud.Agent.Control;

/// <summary>What the agent registers about its CPU: logical cores, model name and benchmark score (events/s over all cores).</summary>
internal sealed record AgentHardware(int CpuCores, string CpuModel, double BenchmarkScore)
{
    private const int MaxModelLength = 128;

    /// <summary>
    /// The host's CPU: cores from the runtime, the model from <c>/proc/cpuinfo</c> (<c>model name</c>, else
    /// <c>Hardware</c>/<c>Processor</c> on ARM), and <paramref name="benchmarkScore"/>.
    /// </summary>
    public static AgentHardware Detect(double benchmarkScore, string cpuInfoPath = "/proc/cpuinfo") =>
        new(Environment.ProcessorCount, ReadCpuModel(cpuInfoPath), benchmarkScore);

    internal static string ReadCpuModel(string cpuInfoPath)
    {
        try
        {
            foreach (var line in File.ReadLines(cpuInfoPath))
            {
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0)
                {
                    continue;
                }

                var key = line.AsSpan(0, colon).Trim();
                if (key is "model name" or "Hardware" or "Processor" or "cpu model")
                {
                    var value = Clean(line[(colon + 1)..]);
                    if (value.Length > 0)
                    {
                        return value;
                    }
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Not Linux, or no access: fall back to the architecture.
        }

        return $"unknown {RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()} CPU";
    }

    private static string Clean(string text)
    {
        var chars = text.Trim().Where(c => !char.IsControl(c)).ToArray();
        var s = string.Join(' ', new string(chars).Split(' ', StringSplitOptions.RemoveEmptyEntries));
        return s.Length <= MaxModelLength ? s : s[..MaxModelLength];
    }
}
