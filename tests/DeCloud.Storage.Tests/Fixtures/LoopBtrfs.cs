using System.Diagnostics;
using System.Globalization;
using DeCloud.Testing;

namespace DeCloud.Storage.Tests.Fixtures;

/// <summary>
/// A Btrfs filesystem on a sparse loop file (<c>truncate</c> + <c>mkfs.btrfs</c> + <c>mount -o loop</c>),
/// named <c>/tmp/dcs-&lt;pid&gt;-&lt;guid&gt;.img</c> and mounted on <c>/tmp/dcs-mnt-&lt;pid&gt;-&lt;guid&gt;</c>.
/// Disposing unmounts and deletes it; <see cref="CleanLeftovers"/> removes what a crashed run left.
/// </summary>
public sealed class LoopBtrfs : IAsyncDisposable
{
    private const string Prefix = "dcs-";

    private LoopBtrfs(string image, string mountPath)
    {
        ImagePath = image;
        MountPath = mountPath;
    }

    public string ImagePath { get; }

    public string MountPath { get; }

    /// <summary>Skips (dev box) or fails (CI) unless root, btrfs-progs and loop mounts are available.</summary>
    public static void Require()
    {
        RealDependency.RequireRoot("loop-mounted Btrfs filesystems");
        RealDependency.RequireExecutable("mkfs.btrfs");
        RealDependency.RequireExecutable("btrfs");
        RealDependency.RequireExecutable("chattr");
    }

    public static async Task<LoopBtrfs> CreateAsync(long sizeBytes)
    {
        var id = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        var image = Path.Combine(Path.GetTempPath(), $"{Prefix}{id}.img");
        var mount = Path.Combine(Path.GetTempPath(), $"{Prefix}mnt-{id}");
        try
        {
            await Run("truncate", "-s", sizeBytes.ToString(CultureInfo.InvariantCulture), image);
            await Run("mkfs.btrfs", "-q", "-f", image);
            Directory.CreateDirectory(mount);
            await Run("mount", "-o", "loop", image, mount);
        }
        catch
        {
            await TearDown(image, mount);
            throw;
        }

        return new LoopBtrfs(image, mount);
    }

    /// <summary>Creates a directory for a <see cref="BtrfsVolumes"/> root inside the filesystem.</summary>
    public string NewRoot(string name)
    {
        var dir = Path.Combine(MountPath, name);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public ValueTask DisposeAsync() => new(TearDown(ImagePath, MountPath));

    /// <summary>Unmounts and deletes loop filesystems whose creating process is gone.</summary>
    public static async Task CleanLeftovers()
    {
        var tmp = Path.GetTempPath();
        foreach (var mount in Directory.GetDirectories(tmp, Prefix + "mnt-*"))
        {
            if (!IsOrphan(Path.GetFileName(mount)[(Prefix.Length + 4)..]))
            {
                continue;
            }

            var id = Path.GetFileName(mount)[(Prefix.Length + 4)..];
            await TearDown(Path.Combine(tmp, Prefix + id + ".img"), mount);
        }

        foreach (var image in Directory.GetFiles(tmp, Prefix + "*.img"))
        {
            if (IsOrphan(Path.GetFileNameWithoutExtension(image)[Prefix.Length..]))
            {
                await TearDown(image, null);
            }
        }
    }

    private static bool IsOrphan(string id)
    {
        var dash = id.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0 || !int.TryParse(id.AsSpan(0, dash), CultureInfo.InvariantCulture, out var pid))
        {
            return false;
        }

        if (pid == Environment.ProcessId)
        {
            return false;
        }

        try
        {
            using var p = Process.GetProcessById(pid);
            return p.HasExited;
        }
        catch (ArgumentException)
        {
            return true;
        }
    }

    private static async Task TearDown(string image, string? mount)
    {
        if (mount is not null && Directory.Exists(mount))
        {
            var mounts = await File.ReadAllTextAsync("/proc/mounts");
            if (mounts.Contains(" " + mount + " ", StringComparison.Ordinal))
            {
                var r = await ProcessRunner.RunAsync("umount", [mount], TimeSpan.FromMinutes(2));
                if (r.ExitCode != 0)
                {
                    await ProcessRunner.RunAsync("umount", ["-l", mount], TimeSpan.FromMinutes(2));
                }
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

        // A loop device still attached to the image (mount -o loop normally auto-clears it).
        var loops = await ProcessRunner.RunAsync("losetup", ["-j", image]);
        foreach (var line in loops.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var dev = line.Split(':')[0];
            await ProcessRunner.RunAsync("losetup", ["-d", dev]);
        }

        File.Delete(image);
    }

    private static async Task Run(string program, params string[] args) =>
        (await ProcessRunner.RunAsync(program, args, TimeSpan.FromMinutes(2))).EnsureSuccess($"{program} {string.Join(' ', args)}");
}
