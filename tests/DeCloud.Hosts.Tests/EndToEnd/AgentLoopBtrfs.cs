using System.Globalization;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>
/// A Btrfs filesystem on a sparse loop file for the agent's storage tests: <c>/tmp/dca9-&lt;pid&gt;-&lt;guid&gt;.img</c>
/// mounted on <c>/tmp/dca9-mnt-&lt;pid&gt;-&lt;guid&gt;</c>. Disposing unmounts and deletes it; leftovers of crashed runs
/// (their process is gone) are removed before the first one is made.
/// </summary>
internal sealed class AgentLoopBtrfs : IAsyncDisposable
{
    private const string Prefix = "dca9-";

    private AgentLoopBtrfs(string image, string mountPath)
    {
        ImagePath = image;
        MountPath = mountPath;
    }

    public string ImagePath { get; }

    public string MountPath { get; }

    public static void Require()
    {
        RealDependency.RequireRoot("loop-mounted Btrfs filesystems");
        foreach (var tool in new[] { "mkfs.btrfs", "btrfs", "chattr", "losetup" })
        {
            RealDependency.RequireExecutable(tool);
        }
    }

    public static async Task<AgentLoopBtrfs> CreateAsync(long sizeBytes = 512L << 20)
    {
        Require();
        await CleanLeftoversAsync();
        var id = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        var image = Path.Combine(Path.GetTempPath(), $"{Prefix}{id}.img");
        var mount = Path.Combine(Path.GetTempPath(), $"{Prefix}mnt-{id}");
        try
        {
            await RunAsync("truncate", "-s", sizeBytes.ToString(CultureInfo.InvariantCulture), image);
            await RunAsync("mkfs.btrfs", "-q", "-f", image);
            Directory.CreateDirectory(mount);
            await RunAsync("mount", "-o", "loop", image, mount);
        }
        catch
        {
            await TearDownAsync(image, mount);
            throw;
        }

        return new AgentLoopBtrfs(image, mount);
    }

    /// <summary>A new folder inside the filesystem (a volumes root).</summary>
    public string NewRoot(string name)
    {
        var dir = Path.Combine(MountPath, name);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public ValueTask DisposeAsync() => new(TearDownAsync(ImagePath, MountPath));

    private static async Task CleanLeftoversAsync()
    {
        var tmp = Path.GetTempPath();
        foreach (var mount in Directory.GetDirectories(tmp, Prefix + "mnt-*"))
        {
            var id = Path.GetFileName(mount)[(Prefix.Length + 4)..];
            if (IsOrphan(id))
            {
                await TearDownAsync(Path.Combine(tmp, Prefix + id + ".img"), mount);
            }
        }

        foreach (var image in Directory.GetFiles(tmp, Prefix + "*.img"))
        {
            if (IsOrphan(Path.GetFileNameWithoutExtension(image)[Prefix.Length..]))
            {
                await TearDownAsync(image, null);
            }
        }
    }

    private static bool IsOrphan(string id)
    {
        var dash = id.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0 || !int.TryParse(id.AsSpan(0, dash), CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId)
        {
            return false;
        }

        return !Directory.Exists($"/proc/{pid}");
    }

    private static async Task TearDownAsync(string image, string? mount)
    {
        if (mount is not null && Directory.Exists(mount))
        {
            if ((await File.ReadAllTextAsync("/proc/mounts")).Contains(" " + mount + " ", StringComparison.Ordinal)
                && (await ProcessRunner.RunAsync("umount", [mount], TimeSpan.FromMinutes(2))).ExitCode != 0)
            {
                await ProcessRunner.RunAsync("umount", ["-l", mount], TimeSpan.FromMinutes(2));
            }

            try
            {
                Directory.Delete(mount);
            }
            catch (IOException)
            {
                // Still busy; the next run's leftover sweep retries.
            }
        }

        var loops = await ProcessRunner.RunAsync("losetup", ["-j", image]);
        foreach (var line in loops.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            await ProcessRunner.RunAsync("losetup", ["-d", line.Split(':')[0]]);
        }

        File.Delete(image);
    }

    private static async Task RunAsync(string program, params string[] args) =>
        (await ProcessRunner.RunAsync(program, args, TimeSpan.FromMinutes(2))).EnsureSuccess($"{program} {string.Join(' ', args)}");
}
