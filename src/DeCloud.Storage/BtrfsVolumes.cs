using System.Buffers;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Storage;

/// <summary>
/// The volumes of one host: Btrfs subvolumes and read-only snapshots directly under
/// <see cref="BtrfsVolumesOptions.RootPath"/>, with qgroup quotas and a no-copy-on-write images directory.
/// Every name is checked by <see cref="VolumeName"/> before it reaches the filesystem, and every
/// <c>btrfs</c> call goes through one runner that turns failures into typed exceptions.
/// </summary>
public sealed partial class BtrfsVolumes
{
    private const int EdQuot = 122;
    private const int EnoSpc = 28;
    private readonly ILogger _logger;

    /// <summary>Creates the volume set. Options are validated here; nothing touches the disk until a call.</summary>
    public BtrfsVolumes(BtrfsVolumesOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        Root = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(options.RootPath));
        var factory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = factory.CreateLogger<BtrfsVolumes>();
        Runner = new BtrfsRunner(options.BtrfsPath, options.ChattrPath, factory.CreateLogger<BtrfsRunner>());
    }

    /// <summary>The absolute root directory holding the volumes.</summary>
    public string Root { get; }

    internal BtrfsVolumesOptions Options { get; }

    internal BtrfsRunner Runner { get; }

    /// <summary>The absolute path of volume <paramref name="name"/> (validated; it need not exist).</summary>
    public string GetPath(string name)
    {
        VolumeName.Validate(name, nameof(name));
        return System.IO.Path.Combine(Root, name);
    }

    /// <summary>Creates an empty subvolume.</summary>
    /// <exception cref="VolumeExistsException">Something with that name exists.</exception>
    public async Task<SubvolumeInfo> CreateAsync(string name, CancellationToken cancellationToken = default)
    {
        var path = GetPath(name);
        ThrowIfTaken(name, path);
        await Runner.RunAsync(["subvolume", "create", path], cancellationToken).ConfigureAwait(false);
        Log.Created(_logger, name);
        return await GetAsync(name, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Deletes a subvolume or snapshot.</summary>
    /// <exception cref="VolumeNotFoundException">No subvolume has that name.</exception>
    public async Task DeleteAsync(string name, CancellationToken cancellationToken = default)
    {
        var info = await GetAsync(name, cancellationToken).ConfigureAwait(false);
        await Runner.RunAsync(["subvolume", "delete", info.Path], cancellationToken).ConfigureAwait(false);
        Log.Deleted(_logger, name);
    }

    /// <summary>Snapshots <paramref name="sourceName"/> as <paramref name="snapshotName"/> (read-only unless asked otherwise).</summary>
    public async Task<SubvolumeInfo> SnapshotAsync(string sourceName, string snapshotName, bool readOnly = true, CancellationToken cancellationToken = default)
    {
        var source = await GetAsync(sourceName, cancellationToken).ConfigureAwait(false);
        var path = GetPath(snapshotName);
        ThrowIfTaken(snapshotName, path);
        List<string> args = ["subvolume", "snapshot"];
        if (readOnly)
        {
            args.Add("-r");
        }

        args.Add(source.Path);
        args.Add(path);
        await Runner.RunAsync(args, cancellationToken, quotaVolume: sourceName).ConfigureAwait(false);
        Log.Snapshotted(_logger, sourceName, snapshotName, readOnly);
        return await GetAsync(snapshotName, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Lists the subvolumes and snapshots directly under the root, by name.</summary>
    public async Task<IReadOnlyList<SubvolumeInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        if (!Directory.Exists(Root))
        {
            throw new DirectoryNotFoundException($"The volumes root '{Root}' does not exist. Mount the Btrfs filesystem and create it first.");
        }

        var all = await Runner.RunAsync(["subvolume", "list", "-o", "-u", "-q", "-R", Root], cancellationToken).ConfigureAwait(false);
        var readOnly = await Runner.RunAsync(["subvolume", "list", "-o", "-r", Root], cancellationToken).ConfigureAwait(false);
        return ParseList(all, readOnly, Root);
    }

    /// <summary>Finds a volume by name, or null.</summary>
    public async Task<SubvolumeInfo?> FindAsync(string name, CancellationToken cancellationToken = default)
    {
        VolumeName.Validate(name, nameof(name));
        var list = await ListAsync(cancellationToken).ConfigureAwait(false);
        foreach (var s in list)
        {
            if (s.Name == name)
            {
                return s;
            }
        }

        return null;
    }

    /// <summary>Gets a volume by name.</summary>
    /// <exception cref="VolumeNotFoundException">No subvolume has that name.</exception>
    public async Task<SubvolumeInfo> GetAsync(string name, CancellationToken cancellationToken = default) =>
        await FindAsync(name, cancellationToken).ConfigureAwait(false) ?? throw new VolumeNotFoundException(name, Root);

    /// <summary>Turns on qgroup accounting for the filesystem (needed before limits and usage). Idempotent.</summary>
    public async Task EnableQuotasAsync(CancellationToken cancellationToken = default)
    {
        await Runner.RunAsync(["quota", "enable", Root], cancellationToken).ConfigureAwait(false);
        await Runner.RunAsync(["quota", "rescan", "-w", Root], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Limits the bytes volume <paramref name="name"/> may reference; null removes the limit.</summary>
    public async Task SetQuotaLimitAsync(string name, long? limitBytes, CancellationToken cancellationToken = default)
    {
        if (limitBytes is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(limitBytes), limitBytes, "A quota limit must be positive bytes, or null for no limit.");
        }

        var info = await GetAsync(name, cancellationToken).ConfigureAwait(false);
        var size = limitBytes?.ToString(CultureInfo.InvariantCulture) ?? "none";
        await RunQuotaCommandAsync(["qgroup", "limit", size, info.Path], cancellationToken).ConfigureAwait(false);
        Log.QuotaSet(_logger, name, size);
    }

    /// <summary>Reads referenced and exclusive bytes and the limit of volume <paramref name="name"/> (after a filesystem sync).</summary>
    public async Task<QuotaUsage> GetQuotaAsync(string name, CancellationToken cancellationToken = default)
    {
        var info = await GetAsync(name, cancellationToken).ConfigureAwait(false);
        await Runner.RunAsync(["filesystem", "sync", info.Path], cancellationToken).ConfigureAwait(false);
        var text = await RunQuotaCommandAsync(["qgroup", "show", "-r", "-e", "-f", "--raw", info.Path], cancellationToken).ConfigureAwait(false);
        return ParseQgroup(text, info.Id) ?? throw new StorageException(
            $"No qgroup 0/{info.Id} is listed for volume '{name}'. Enable quotas (EnableQuotasAsync) before the volume is created or rescan.");
    }

    /// <summary>
    /// Creates (if needed) the volume's images directory with the no-copy-on-write attribute
    /// (<c>chattr +C</c>) and returns its path. VM disk images take small random in-place writes:
    /// with copy-on-write each one relocates the block, so a busy image fragments into many thousand
    /// extents and every write costs a data checksum update. Files created in a +C directory inherit
    /// nodatacow and are rewritten in place (snapshots still work: the first write after a snapshot
    /// copies once). The attribute only takes effect on empty files, hence it is set on the directory
    /// before any image is written.
    /// </summary>
    public async Task<string> EnsureImagesDirectoryAsync(string volumeName, CancellationToken cancellationToken = default)
    {
        var volume = await GetAsync(volumeName, cancellationToken).ConfigureAwait(false);
        var dir = System.IO.Path.Combine(volume.Path, Options.ImagesDirectoryName);
        Directory.CreateDirectory(dir);
        await Runner.RunChattrAsync(["+C", dir], cancellationToken).ConfigureAwait(false);
        return dir;
    }

    /// <summary>
    /// Writes a disk image into the volume's no-copy-on-write images directory. A write past the
    /// volume's quota raises <see cref="QuotaExceededException"/> and leaves no partial image behind.
    /// </summary>
    public async Task<long> WriteImageAsync(string volumeName, string imageName, Stream content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        VolumeName.Validate(imageName, nameof(imageName));
        var dir = await EnsureImagesDirectoryAsync(volumeName, cancellationToken).ConfigureAwait(false);
        var final = System.IO.Path.Combine(dir, imageName);
        if (File.Exists(final))
        {
            throw new VolumeExistsException(imageName, dir);
        }

        var partial = System.IO.Path.Combine(dir, "." + imageName + ".partial");
        long written = 0;
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            var file = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
            await using (file.ConfigureAwait(false))
            {
                int n;
                while ((n = await content.ReadAsync(buffer.AsMemory(), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    await file.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                    written += n;
                }

                await file.FlushAsync(cancellationToken).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }

            File.Move(partial, final);
            return written;
        }
        catch (IOException ex) when (IsErrno(ex, EdQuot, "quota"))
        {
            File.Delete(partial);
            long? limit = null;
            try
            {
                limit = (await GetQuotaAsync(volumeName, CancellationToken.None).ConfigureAwait(false)).LimitBytes;
            }
            catch (StorageException)
            {
                // The limit is extra detail only.
            }

            throw new QuotaExceededException(volumeName, limit, ex);
        }
        catch (IOException ex) when (IsErrno(ex, EnoSpc, "No space"))
        {
            File.Delete(partial);
            throw new StorageFullException(dir, ex);
        }
        catch
        {
            File.Delete(partial);
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    internal static bool IsErrno(IOException ex, int errno, string messagePart) =>
        ex.HResult == errno || ex.Message.Contains(messagePart, StringComparison.OrdinalIgnoreCase);

    private async Task<string> RunQuotaCommandAsync(IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        try
        {
            return await Runner.RunAsync(args, cancellationToken).ConfigureAwait(false);
        }
        catch (BtrfsCommandException ex) when (ex.StandardError.Contains("quota", StringComparison.OrdinalIgnoreCase) &&
                                                ex.StandardError.Contains("not enabled", StringComparison.OrdinalIgnoreCase))
        {
            throw new StorageException($"Quotas are not enabled on the filesystem holding '{Root}'. Call EnableQuotasAsync first.", ex);
        }
    }

    private static void ThrowIfTaken(string name, string path)
    {
        if (Directory.Exists(path) || File.Exists(path))
        {
            throw new VolumeExistsException(name, System.IO.Path.GetDirectoryName(path)!);
        }
    }

    [GeneratedRegex(@"^ID (\d+) gen (\d+) (?:cgen \d+ )?(?:parent \d+ )?top level \d+ parent_uuid (\S+)\s+received_uuid (\S+)\s+uuid (\S+) path (.+)$")]
    private static partial Regex ListLine();

    [GeneratedRegex(@"^ID (\d+) ")]
    private static partial Regex IdOnly();

    internal static List<SubvolumeInfo> ParseList(string listing, string readOnlyListing, string root)
    {
        var readOnlyIds = new HashSet<long>();
        foreach (var line in readOnlyListing.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var m = IdOnly().Match(line);
            if (m.Success)
            {
                readOnlyIds.Add(long.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture));
            }
        }

        var rows = new List<(long Id, long Gen, Guid? Parent, Guid? Received, Guid Uuid, string Path)>();
        foreach (var line in listing.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var m = ListLine().Match(line);
            if (!m.Success)
            {
                continue;
            }

            rows.Add((
                long.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture),
                long.Parse(m.Groups[2].ValueSpan, CultureInfo.InvariantCulture),
                ParseUuid(m.Groups[3].Value),
                ParseUuid(m.Groups[4].Value),
                ParseUuid(m.Groups[5].Value) ?? Guid.Empty,
                m.Groups[6].Value));
        }

        // Listed paths are relative to the filesystem's top level; the root's own prefix comes from
        // the mount table (mount point and the subvolume path mounted there).
        var prefix = TopLevelPrefix(root);
        var result = new List<SubvolumeInfo>();
        foreach (var r in rows)
        {
            var name = System.IO.Path.GetFileName(r.Path);
            var p = r.Path.Length > name.Length ? r.Path[..(r.Path.Length - name.Length)] : string.Empty;
            if (p == prefix && VolumeName.IsValid(name))
            {
                result.Add(new SubvolumeInfo(name, System.IO.Path.Combine(root, name), r.Id, r.Gen, r.Uuid, r.Parent, r.Received, readOnlyIds.Contains(r.Id)));
            }
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return result;
    }

    /// <summary>The root's path relative to the Btrfs top level, with a trailing '/', or empty for the top level itself.</summary>
    internal static string TopLevelPrefix(string root)
    {
        string? bestMount = null;
        var bestFsRoot = "/";
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // id parent major:minor fsroot mountpoint options ... - fstype source superoptions
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (fields.Length < 5 || dash < 0 || dash + 1 >= fields.Length || fields[dash + 1] != "btrfs")
            {
                continue;
            }

            var mount = Unescape(fields[4]);
            var inside = root == mount || mount == "/" || root.StartsWith(mount + "/", StringComparison.Ordinal);
            if (inside && (bestMount is null || mount.Length > bestMount.Length))
            {
                bestMount = mount;
                bestFsRoot = Unescape(fields[3]);
            }
        }

        if (bestMount is null)
        {
            throw new StorageException($"'{root}' is not on a mounted Btrfs filesystem. Point BtrfsVolumesOptions.RootPath at a directory on Btrfs.");
        }

        var relative = System.IO.Path.GetRelativePath(bestMount, root);
        var combined = System.IO.Path.Combine(bestFsRoot, relative == "." ? string.Empty : relative).Trim('/');
        return combined.Length == 0 ? string.Empty : combined + "/";
    }

    private static string Unescape(string field) =>
        Regex.Replace(field, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString());

    internal static QuotaUsage? ParseQgroup(string text, long subvolumeId)
    {
        var id = "0/" + subvolumeId.ToString(CultureInfo.InvariantCulture);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var cols = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (cols.Length >= 4 && cols[0] == id &&
                long.TryParse(cols[1], CultureInfo.InvariantCulture, out var rfer) &&
                long.TryParse(cols[2], CultureInfo.InvariantCulture, out var excl))
            {
                long? limit = long.TryParse(cols[3], CultureInfo.InvariantCulture, out var l) ? l : null;
                return new QuotaUsage(rfer, excl, limit);
            }
        }

        return null;
    }

    private static Guid? ParseUuid(string text) => Guid.TryParse(text, out var g) && g != Guid.Empty ? g : null;

    private static partial class Log
    {
        [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Created subvolume {Name}")]
        public static partial void Created(ILogger logger, string name);

        [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Deleted subvolume {Name}")]
        public static partial void Deleted(ILogger logger, string name);

        [LoggerMessage(EventId = 12, Level = LogLevel.Information, Message = "Snapshot {Source} -> {Snapshot} (read-only: {ReadOnly})")]
        public static partial void Snapshotted(ILogger logger, string source, string snapshot, bool readOnly);

        [LoggerMessage(EventId = 13, Level = LogLevel.Information, Message = "Quota of {Name} set to {Limit}")]
        public static partial void QuotaSet(ILogger logger, string name, string limit);
    }
}
