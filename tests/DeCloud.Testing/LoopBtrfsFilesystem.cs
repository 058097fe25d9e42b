using System.Globalization;

namespace DeCloud.Testing;

/// <summary>
/// A Btrfs filesystem on a sparse loop file (<c>truncate</c> + <c>mkfs.btrfs</c> + <c>mount -o loop</c>) named
/// <c>/tmp/&lt;prefix&gt;&lt;pid&gt;-&lt;guid&gt;.img</c> and mounted on <c>/tmp/&lt;prefix&gt;mnt-&lt;pid&gt;-&lt;guid&gt;</c>, the prefix being
/// the test project's own. Disposing unmounts and deletes it; <see cref="CleanLeftoversAsync"/> removes what crashed
/// runs with the same prefix left (only those whose process is gone).
/// </summary>
public sealed class LoopBtrfsFilesystem : IAsyncDisposable
{
    private LoopBtrfsFilesystem(string image, string mountPath)
    {
        ImagePath = image;
        MountPath = mountPath;
    }

    /// <summary>The sparse image file.</summary>
    public string ImagePath { get; }

    /// <summary>Where the filesystem is mounted.</summary>
    public string MountPath { get; }

    /// <summary>Skips (dev box) or fails (CI) unless root, btrfs-progs, chattr and losetup are available.</summary>
    public static void Require()
    {
        RealDependency.RequireRoot("loop-mounted Btrfs filesystems");
        foreach (var tool in new[] { "mkfs.btrfs", "btrfs", "chattr", "losetup" })
        {
            RealDependency.RequireExecutable(tool);
        }
    }

    /// <summary>Makes and mounts a filesystem of <paramref name="sizeBytes"/> (sparse) with names starting <paramref name="prefix"/> (e.g. <c>dcs-</c>).</summary>
    public static async Task<LoopBtrfsFilesystem> CreateAsync(string prefix, long sizeBytes = 512L << 20)
    {
        Require();
        var id = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        var image = Path.Combine(Path.GetTempPath(), $"{prefix}{id}.img");
        var mount = Path.Combine(Path.GetTempPath(), $"{prefix}mnt-{id}");
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

        return new LoopBtrfsFilesystem(image, mount);
    }

    /// <summary>Creates a directory (e.g. a volumes root) inside the filesystem.</summary>
    public string NewRoot(string name)
    {
        var dir = Path.Combine(MountPath, name);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Unmounts and deletes it.</summary>
    public ValueTask DisposeAsync() => new(TearDownAsync(ImagePath, MountPath));

    /// <summary>Unmounts and deletes filesystems with <paramref name="prefix"/> whose creating process is gone.</summary>
    public static async Task CleanLeftoversAsync(string prefix)
    {
        var tmp = Path.GetTempPath();
        foreach (var mount in Directory.GetDirectories(tmp, prefix + "mnt-*"))
        {
            var id = Path.GetFileName(mount)[(prefix.Length + 4)..];
            if (IsOrphan(id))
            {
                await TearDownAsync(Path.Combine(tmp, prefix + id + ".img"), mount);
            }
        }

        foreach (var image in Directory.GetFiles(tmp, prefix + "*.img"))
        {
            if (IsOrphan(Path.GetFileNameWithoutExtension(image)[prefix.Length..]))
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
