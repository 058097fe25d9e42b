using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Storage.Backups;

/// <summary>
/// Scheduled backups of volumes: tagged read-only snapshots on the host, sent incrementally to a
/// second Btrfs filesystem, both sides pruned by btrbk-style retention on a <see cref="TimeProvider"/>,
/// and restores of a backup into a new volume (verified by checksum manifest).
/// </summary>
public sealed partial class VolumeBackups
{
    private readonly BtrfsVolumes _source;
    private readonly BtrfsVolumes _target;
    private readonly BackupOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    /// <summary>Creates backups of <paramref name="source"/>'s volumes onto <paramref name="target"/>.</summary>
    public VolumeBackups(BtrfsVolumes source, BtrfsVolumes target, BackupOptions options, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _source = source;
        _target = target;
        _options = options;
        SourcePolicy = RetentionPolicy.Parse(options.SourceRetention);
        TargetPolicy = RetentionPolicy.Parse(options.TargetRetention);
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<VolumeBackups>();
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Retention of local snapshots.</summary>
    public RetentionPolicy SourcePolicy { get; }

    /// <summary>Retention on the target.</summary>
    public RetentionPolicy TargetPolicy { get; }

    /// <summary>Takes a tagged read-only snapshot of <paramref name="volumeName"/> now.</summary>
    public async Task<BackupSnapshot> SnapshotAsync(string volumeName, CancellationToken cancellationToken = default)
    {
        VolumeName.Validate(volumeName, nameof(volumeName));
        var now = _time.GetUtcNow();
        now = new DateTimeOffset(now.Ticks - (now.Ticks % TimeSpan.TicksPerSecond), TimeSpan.Zero);
        var name = BackupSnapshot.FormatName(volumeName, _options.ProjectId, _options.HostId, now);
        VolumeName.Validate(name, nameof(volumeName));
        await _source.SnapshotAsync(volumeName, name, readOnly: true, cancellationToken).ConfigureAwait(false);
        return BackupSnapshot.TryParse(name)!;
    }

    /// <summary>Lists this project's and host's backups of <paramref name="volumeName"/>, oldest first.</summary>
    public async Task<IReadOnlyList<BackupSnapshot>> ListAsync(string volumeName, BackupLocation location, CancellationToken cancellationToken = default)
    {
        VolumeName.Validate(volumeName, nameof(volumeName));
        var list = await (location == BackupLocation.Source ? _source : _target).ListAsync(cancellationToken).ConfigureAwait(false);
        return Mine(list, volumeName).Select(x => x.Backup).ToList();
    }

    private List<(BackupSnapshot Backup, SubvolumeInfo Info)> Mine(IEnumerable<SubvolumeInfo> list, string volumeName) =>
        list.Select(s => (Backup: BackupSnapshot.TryParse(s.Name), Info: s))
            .Where(x => x.Backup is { } b && b.VolumeName == volumeName && b.ProjectId == _options.ProjectId && b.HostId == _options.HostId && x.Info.IsReadOnly)
            .Select(x => (x.Backup!, x.Info))
            .OrderBy(x => x.Item1.Timestamp)
            .ToList();

    /// <summary>
    /// Sends every local backup newer than the newest one on the target, each incrementally against
    /// the newest snapshot both sides hold (in full when there is none). A half-received copy from an
    /// earlier failure is removed first. Returns how many were sent.
    /// </summary>
    public async Task<int> SendAsync(string volumeName, CancellationToken cancellationToken = default)
    {
        VolumeName.Validate(volumeName, nameof(volumeName));
        var local = Mine(await _source.ListAsync(cancellationToken).ConfigureAwait(false), volumeName);
        var remoteAll = await _target.ListAsync(cancellationToken).ConfigureAwait(false);
        var remote = Mine(remoteAll, volumeName);
        bool OnTarget(SubvolumeInfo s) => remote.Any(r => r.Info.Name == s.Name && r.Info.ReceivedUuid == s.Uuid);
        var newestRemote = remote.Count > 0 ? remote[^1].Backup.Timestamp : DateTimeOffset.MinValue;
        var sent = 0;
        SubvolumeInfo? parent = local.Where(l => OnTarget(l.Info)).Select(l => l.Info).LastOrDefault();
        foreach (var (backup, info) in local)
        {
            if (backup.Timestamp <= newestRemote || OnTarget(info))
            {
                continue;
            }

            if (remoteAll.FirstOrDefault(r => r.Name == info.Name) is not null)
            {
                Log.RemovingHalfReceived(_logger, info.Name);
                await _target.DeleteAsync(info.Name, cancellationToken).ConfigureAwait(false);
            }

            try
            {
                await _source.Runner.SendReceiveLocalAsync(info.Path, parent?.Path, _target.Root, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is StorageException or OperationCanceledException)
            {
                await RemoveIfPresentAsync(_target, info.Name).ConfigureAwait(false);
                throw;
            }

            var received = await _target.FindAsync(info.Name, cancellationToken).ConfigureAwait(false);
            if (received?.ReceivedUuid != info.Uuid)
            {
                await RemoveIfPresentAsync(_target, info.Name).ConfigureAwait(false);
                throw new StorageException($"Backup '{info.Name}' did not arrive intact on the target (received UUID {received?.ReceivedUuid}, expected {info.Uuid}).");
            }

            Log.Sent(_logger, info.Name, parent?.Name);
            parent = info;
            sent++;
        }

        return sent;
    }

    /// <summary>
    /// Deletes the backups that <paramref name="location"/>'s retention policy no longer keeps at the
    /// current time. On the source the newest snapshot already on the target is always kept (it is the
    /// parent of the next incremental send). Returns the deleted names.
    /// </summary>
    public async Task<IReadOnlyList<string>> PruneAsync(string volumeName, BackupLocation location, CancellationToken cancellationToken = default)
    {
        VolumeName.Validate(volumeName, nameof(volumeName));
        var volumes = location == BackupLocation.Source ? _source : _target;
        var policy = location == BackupLocation.Source ? SourcePolicy : TargetPolicy;
        var mine = Mine(await volumes.ListAsync(cancellationToken).ConfigureAwait(false), volumeName);
        var keep = policy.Apply(mine.Select(m => m.Backup.Timestamp).ToList(), _time.GetUtcNow());
        if (location == BackupLocation.Source)
        {
            var remote = Mine(await _target.ListAsync(cancellationToken).ConfigureAwait(false), volumeName);
            for (var i = mine.Count - 1; i >= 0; i--)
            {
                if (remote.Any(r => r.Info.Name == mine[i].Info.Name && r.Info.ReceivedUuid == mine[i].Info.Uuid))
                {
                    keep[i] = true;
                    break;
                }
            }
        }

        var deleted = new List<string>();
        for (var i = 0; i < mine.Count; i++)
        {
            if (!keep[i])
            {
                await volumes.DeleteAsync(mine[i].Info.Name, cancellationToken).ConfigureAwait(false);
                deleted.Add(mine[i].Info.Name);
            }
        }

        if (deleted.Count > 0)
        {
            StorageTelemetry.SnapshotsPruned.Add(deleted.Count, new KeyValuePair<string, object?>("location", location.ToString()));
            Log.Pruned(_logger, volumeName, location, deleted.Count);
        }

        return deleted;
    }

    /// <summary>One scheduled round: snapshot, send to the target, prune both sides.</summary>
    public async Task<BackupSnapshot> BackupAsync(string volumeName, CancellationToken cancellationToken = default)
    {
        var snapshot = await SnapshotAsync(volumeName, cancellationToken).ConfigureAwait(false);
        await SendAsync(volumeName, cancellationToken).ConfigureAwait(false);
        await PruneAsync(volumeName, BackupLocation.Source, cancellationToken).ConfigureAwait(false);
        await PruneAsync(volumeName, BackupLocation.Target, cancellationToken).ConfigureAwait(false);
        return snapshot;
    }

    /// <summary>
    /// Runs <see cref="BackupAsync"/> for each volume every <see cref="BackupOptions.Interval"/> until
    /// cancelled. A failing volume is logged and retried next round; the loop keeps going.
    /// </summary>
    public async Task RunAsync(IReadOnlyList<string> volumeNames, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(volumeNames);
        foreach (var v in volumeNames)
        {
            VolumeName.Validate(v, nameof(volumeNames));
        }

        while (true)
        {
            foreach (var v in volumeNames)
            {
                try
                {
                    await BackupAsync(v, cancellationToken).ConfigureAwait(false);
                }
                catch (StorageException ex)
                {
                    Log.RoundFailed(_logger, v, ex.Message);
                }
            }

            await Task.Delay(_options.Interval, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Restores backup <paramref name="backupName"/> from the target into a new writable volume
    /// <paramref name="newVolumeName"/> on the source host, and verifies it file by file against the
    /// backup. Nothing is left behind on failure.
    /// </summary>
    /// <exception cref="VolumeNotFoundException">The target has no such backup.</exception>
    /// <exception cref="VolumeExistsException">The new name is taken.</exception>
    public async Task<SubvolumeInfo> RestoreAsync(string backupName, string newVolumeName, CancellationToken cancellationToken = default)
    {
        VolumeName.Validate(backupName, nameof(backupName));
        VolumeName.Validate(newVolumeName, nameof(newVolumeName));
        var backup = await _target.GetAsync(backupName, cancellationToken).ConfigureAwait(false);
        if (await _source.FindAsync(newVolumeName, cancellationToken).ConfigureAwait(false) is not null || Directory.Exists(_source.GetPath(newVolumeName)))
        {
            throw new VolumeExistsException(newVolumeName, _source.Root);
        }

        // Received into a private directory first: the backup's name may still exist among local snapshots.
        var stagingRoot = Path.Combine(_source.Root, ".restore-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(stagingRoot);
        var staging = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = stagingRoot, BtrfsPath = _source.Options.BtrfsPath, ChattrPath = _source.Options.ChattrPath });
        var restored = false;
        try
        {
            await _source.Runner.SendReceiveLocalAsync(backup.Path, null, stagingRoot, cancellationToken).ConfigureAwait(false);
            var received = await staging.GetAsync(backupName, cancellationToken).ConfigureAwait(false);
            var volume = await _source.SnapshotPathAsync(received.Path, backupName, newVolumeName, readOnly: false, cancellationToken).ConfigureAwait(false);
            var expected = await VolumeManifest.ComputeAsync(backup.Path, cancellationToken).ConfigureAwait(false);
            var actual = await VolumeManifest.ComputeAsync(volume.Path, cancellationToken).ConfigureAwait(false);
            if (!expected.Matches(actual))
            {
                throw new StorageException($"Restored volume '{newVolumeName}' differs from backup '{backupName}': {actual} vs {expected}.");
            }

            restored = true;
            Log.Restored(_logger, backupName, newVolumeName);
            return volume;
        }
        finally
        {
            foreach (var s in await SafeListAsync(staging).ConfigureAwait(false))
            {
                await RemoveIfPresentAsync(staging, s.Name).ConfigureAwait(false);
            }

            if (!restored)
            {
                await RemoveIfPresentAsync(_source, newVolumeName).ConfigureAwait(false);
            }

            try
            {
                Directory.Delete(stagingRoot, recursive: false);
            }
            catch (IOException ex)
            {
                Log.CleanupFailed(_logger, stagingRoot, ex.Message);
            }
        }
    }

    private static async Task<IReadOnlyList<SubvolumeInfo>> SafeListAsync(BtrfsVolumes volumes)
    {
        try
        {
            return await volumes.ListAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (StorageException)
        {
            return [];
        }
    }

    private async Task RemoveIfPresentAsync(BtrfsVolumes volumes, string name)
    {
        try
        {
            if (await volumes.FindAsync(name, CancellationToken.None).ConfigureAwait(false) is not null)
            {
                await volumes.DeleteAsync(name, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (StorageException ex)
        {
            Log.CleanupFailed(_logger, name, ex.Message);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 60, Level = LogLevel.Information, Message = "Backup {Name} sent (parent {Parent})")]
        public static partial void Sent(ILogger logger, string name, string? parent);

        [LoggerMessage(EventId = 61, Level = LogLevel.Information, Message = "Pruned {Count} backups of {Volume} on the {Location}")]
        public static partial void Pruned(ILogger logger, string volume, BackupLocation location, int count);

        [LoggerMessage(EventId = 62, Level = LogLevel.Information, Message = "Removing half-received backup {Name} from the target")]
        public static partial void RemovingHalfReceived(ILogger logger, string name);

        [LoggerMessage(EventId = 63, Level = LogLevel.Error, Message = "Backup round of {Volume} failed: {Message}")]
        public static partial void RoundFailed(ILogger logger, string volume, string message);

        [LoggerMessage(EventId = 64, Level = LogLevel.Information, Message = "Restored backup {Backup} as {Volume}")]
        public static partial void Restored(ILogger logger, string backup, string volume);

        [LoggerMessage(EventId = 65, Level = LogLevel.Warning, Message = "Cleanup of {What} failed: {Message}")]
        public static partial void CleanupFailed(ILogger logger, string what, string message);
    }
}
