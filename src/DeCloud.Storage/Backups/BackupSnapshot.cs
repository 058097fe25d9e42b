using System.Globalization;
using System.Text.RegularExpressions;

namespace DeCloud.Storage.Backups;

/// <summary>
/// A backup snapshot, tagged in its name as <c>{volume}@backup.{project}.{host}.{yyyyMMddTHHmmssZ}</c>
/// (like btrbk's <c>name.timestamp</c>), so tags survive send/receive and need no side database.
/// </summary>
/// <param name="Name">The snapshot's subvolume name.</param>
/// <param name="VolumeName">The volume it was taken from.</param>
/// <param name="ProjectId">The project tag.</param>
/// <param name="HostId">The host tag.</param>
/// <param name="Timestamp">When it was taken (UTC, to the second).</param>
public sealed partial record BackupSnapshot(string Name, string VolumeName, string ProjectId, string HostId, DateTimeOffset Timestamp)
{
    private const string Marker = "@backup.";
    private const string TimeFormat = "yyyyMMdd'T'HHmmss'Z'";

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    internal static partial Regex TagPattern();

    /// <summary>Builds the snapshot name for the tags and time.</summary>
    public static string FormatName(string volumeName, string projectId, string hostId, DateTimeOffset timestamp) =>
        $"{volumeName}{Marker}{projectId}.{hostId}.{timestamp.UtcDateTime.ToString(TimeFormat, CultureInfo.InvariantCulture)}";

    /// <summary>Parses a snapshot name; null when it is not a backup snapshot name.</summary>
    public static BackupSnapshot? TryParse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var at = name.LastIndexOf(Marker, StringComparison.Ordinal);
        if (at <= 0)
        {
            return null;
        }

        var parts = name[(at + Marker.Length)..].Split('.');
        if (parts.Length != 3 || !TagPattern().IsMatch(parts[0]) || !TagPattern().IsMatch(parts[1]) ||
            !DateTime.TryParseExact(parts[2], TimeFormat, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var time))
        {
            return null;
        }

        return new BackupSnapshot(name, name[..at], parts[0], parts[1], new DateTimeOffset(time, TimeSpan.Zero));
    }
}

/// <summary>Which side of a backup pair.</summary>
public enum BackupLocation
{
    /// <summary>The host's own volumes (local snapshots).</summary>
    Source,

    /// <summary>The second Btrfs filesystem the backups are sent to.</summary>
    Target,
}

/// <summary>Options of <see cref="VolumeBackups"/>.</summary>
public sealed class BackupOptions
{
    /// <summary>Project tag of every snapshot (letters, digits, '-' and '_'; at most 64). Required.</summary>
    public string ProjectId { get; set; } = string.Empty;

    /// <summary>Host tag of every snapshot (letters, digits, '-' and '_'; at most 64). Required.</summary>
    public string HostId { get; set; } = string.Empty;

    /// <summary>Retention of the local snapshots, btrbk syntax (default <c>24h 7d</c>).</summary>
    public string SourceRetention { get; set; } = "24h 7d";

    /// <summary>Retention on the backup target, btrbk syntax (default <c>24h 14d 4w 6m</c>).</summary>
    public string TargetRetention { get; set; } = "24h 14d 4w 6m";

    /// <summary>Time between scheduled backups in <see cref="VolumeBackups.RunAsync"/> (default 1 hour).</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Throws <see cref="ArgumentException"/> naming the invalid property.</summary>
    public void Validate()
    {
        if (!BackupSnapshot.TagPattern().IsMatch(ProjectId ?? string.Empty))
        {
            throw new ArgumentException($"{nameof(BackupOptions)}.{nameof(ProjectId)} must be 1-64 letters, digits, '-' or '_' (got '{ProjectId}').", nameof(ProjectId));
        }

        if (!BackupSnapshot.TagPattern().IsMatch(HostId ?? string.Empty))
        {
            throw new ArgumentException($"{nameof(BackupOptions)}.{nameof(HostId)} must be 1-64 letters, digits, '-' or '_' (got '{HostId}').", nameof(HostId));
        }

        if (!RetentionPolicy.TryParse(SourceRetention, out _, out var e1))
        {
            throw new ArgumentException($"{nameof(BackupOptions)}.{nameof(SourceRetention)} is invalid: {e1}", nameof(SourceRetention));
        }

        if (!RetentionPolicy.TryParse(TargetRetention, out _, out var e2))
        {
            throw new ArgumentException($"{nameof(BackupOptions)}.{nameof(TargetRetention)} is invalid: {e2}", nameof(TargetRetention));
        }

        if (Interval < TimeSpan.FromSeconds(1))
        {
            throw new ArgumentException($"{nameof(BackupOptions)}.{nameof(Interval)} must be at least one second (got {Interval}).", nameof(Interval));
        }
    }
}
