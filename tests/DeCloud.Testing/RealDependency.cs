using System.Diagnostics;
using Xunit;

namespace DeCloud.Testing;

/// <summary>
/// Gates tests that need a real part of the system (libvirt, Btrfs, namespaces, hardhat, PostgreSQL).
/// On a developer machine without the part the test is skipped with a reason; under <c>CI=true</c>
/// a missing part fails the run, it never turns into a skip.
/// </summary>
public static class RealDependency
{
    /// <summary>True when running under CI (<c>CI=true</c>): missing dependencies are failures.</summary>
    public static bool IsCi { get; } =
        string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>True when the process runs as root (needed for loop mounts, namespaces, iptables).</summary>
    public static bool IsRoot { get; } = Environment.UserName == "root" || GetEuid() == 0;

    /// <summary>Skips (developer machine) or fails (CI) when <paramref name="available"/> is false.</summary>
    public static void Require(bool available, string what)
    {
        if (available)
        {
            return;
        }

        if (IsCi)
        {
            Assert.Fail($"Required real dependency is missing under CI=true: {what}. Run eng/install-deps as root.");
        }

        Assert.Skip($"Real dependency not available on this machine: {what}.");
    }

    /// <summary>Requires root.</summary>
    public static void RequireRoot(string why) => Require(IsRoot, $"root ({why})");

    /// <summary>Requires an executable on PATH.</summary>
    public static string RequireExecutable(string name)
    {
        var path = FindExecutable(name);
        Require(path is not null, $"executable '{name}' on PATH");
        return path!;
    }

    /// <summary>Finds an executable on PATH (plus the sbin folders), or null.</summary>
    public static string? FindExecutable(string name)
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/sbin", "/usr/sbin", "/sbin"]);
        foreach (var dir in dirs)
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static int GetEuid()
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("id", "-u") { RedirectStandardOutput = true });
            if (p is null)
            {
                return -1;
            }

            var text = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return int.TryParse(text.Trim(), out var uid) ? uid : -1;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }
}
