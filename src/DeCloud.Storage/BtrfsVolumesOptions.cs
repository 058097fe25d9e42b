namespace DeCloud.Storage;

/// <summary>Where a host keeps its volumes and which tools to run.</summary>
public sealed class BtrfsVolumesOptions
{
    /// <summary>
    /// A directory on a mounted Btrfs filesystem; every volume and snapshot is a subvolume directly
    /// under it. Required, absolute.
    /// </summary>
    public string RootPath { get; set; } = string.Empty;

    /// <summary>The <c>btrfs</c> executable (default: found on PATH).</summary>
    public string BtrfsPath { get; set; } = "btrfs";

    /// <summary>The <c>chattr</c> executable used for the no-copy-on-write images directory.</summary>
    public string ChattrPath { get; set; } = "chattr";

    /// <summary>Name of the no-copy-on-write directory inside a volume that holds VM disk images.</summary>
    public string ImagesDirectoryName { get; set; } = "images";

    /// <summary>Throws <see cref="ArgumentException"/> naming the property that is invalid.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(RootPath) || !System.IO.Path.IsPathFullyQualified(RootPath))
        {
            throw new ArgumentException($"{nameof(BtrfsVolumesOptions)}.{nameof(RootPath)} must be an absolute path on a Btrfs filesystem (got '{RootPath}').", nameof(RootPath));
        }

        if (string.IsNullOrWhiteSpace(BtrfsPath))
        {
            throw new ArgumentException($"{nameof(BtrfsVolumesOptions)}.{nameof(BtrfsPath)} must name the btrfs executable.", nameof(BtrfsPath));
        }

        if (string.IsNullOrWhiteSpace(ChattrPath))
        {
            throw new ArgumentException($"{nameof(BtrfsVolumesOptions)}.{nameof(ChattrPath)} must name the chattr executable.", nameof(ChattrPath));
        }

        if (VolumeName.Check(ImagesDirectoryName) is { } problem)
        {
            throw new ArgumentException($"{nameof(BtrfsVolumesOptions)}.{nameof(ImagesDirectoryName)} is invalid: {problem}.", nameof(ImagesDirectoryName));
        }
    }
}
