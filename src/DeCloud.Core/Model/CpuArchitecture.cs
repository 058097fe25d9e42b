namespace DeCloud.Core.Model;

/// <summary>A CPU architecture a node offers and a VM needs.</summary>
public enum CpuArchitecture
{
    /// <summary>x86_64 (amd64).</summary>
    X86_64 = 0,

    /// <summary>aarch64 (arm64).</summary>
    Aarch64 = 1,
}

/// <summary>Names of <see cref="CpuArchitecture"/> values as operating systems spell them.</summary>
public static class CpuArchitectures
{
    /// <summary>Parses <c>x86_64</c>/<c>amd64</c>/<c>x64</c> or <c>aarch64</c>/<c>arm64</c>.</summary>
    public static CpuArchitecture Parse(string? s, string field = "architecture") => s?.Trim().ToLowerInvariant() switch
    {
        "x86_64" or "amd64" or "x64" => CpuArchitecture.X86_64,
        "aarch64" or "arm64" => CpuArchitecture.Aarch64,
        _ => throw Validate.Fail(field, $"'{s}' is not a supported architecture; expected x86_64 or aarch64."),
    };

    /// <summary>The canonical name: <c>x86_64</c> or <c>aarch64</c>.</summary>
    public static string ToName(this CpuArchitecture architecture) => architecture switch
    {
        CpuArchitecture.X86_64 => "x86_64",
        CpuArchitecture.Aarch64 => "aarch64",
        _ => throw Validate.Fail("architecture", $"'{architecture}' is not a supported architecture."),
    };
}
