using DeCloud.Testing;

namespace DeCloud.Storage.Tests.Fixtures;

/// <summary>
/// A Btrfs filesystem on a sparse loop file named <c>/tmp/dcs-&lt;pid&gt;-&lt;guid&gt;.img</c>, mounted on
/// <c>/tmp/dcs-mnt-&lt;pid&gt;-&lt;guid&gt;</c> (DeCloud.Testing's <see cref="LoopBtrfsFilesystem"/> with this suite's prefix).
/// Disposing unmounts and deletes it; <see cref="CleanLeftovers"/> removes what a crashed run left.
/// </summary>
public sealed class LoopBtrfs : IAsyncDisposable
{
    private const string Prefix = "dcs-";
    private readonly LoopBtrfsFilesystem _fs;

    private LoopBtrfs(LoopBtrfsFilesystem fs) => _fs = fs;

    public string ImagePath => _fs.ImagePath;

    public string MountPath => _fs.MountPath;

    /// <summary>Skips (dev box) or fails (CI) unless root, btrfs-progs and loop mounts are available.</summary>
    public static void Require() => LoopBtrfsFilesystem.Require();

    public static async Task<LoopBtrfs> CreateAsync(long sizeBytes) => new(await LoopBtrfsFilesystem.CreateAsync(Prefix, sizeBytes));

    /// <summary>Creates a directory for a <see cref="BtrfsVolumes"/> root inside the filesystem.</summary>
    public string NewRoot(string name) => _fs.NewRoot(name);

    public ValueTask DisposeAsync() => _fs.DisposeAsync();

    /// <summary>Unmounts and deletes loop filesystems whose creating process is gone.</summary>
    public static Task CleanLeftovers() => LoopBtrfsFilesystem.CleanLeftoversAsync(Prefix);
}
