namespace DeCloud.Storage.Moves;

/// <summary>Options of the destination side of moves.</summary>
public sealed class VolumeReceiverOptions
{
    /// <summary>
    /// Where verified chunks are staged while a stream arrives, when <see cref="StageChunks"/> is on (default:
    /// <c>.staging</c> under the volumes root, on the same filesystem). Staged chunks of an interrupted
    /// stream stay until it is resumed, completed or aborted.
    /// </summary>
    public string? StagingPath { get; set; }

    /// <summary>
    /// How long a receive whose connection dropped keeps running, waiting for the sender to reconnect and
    /// resume at the next chunk (default 10 minutes). <c>btrfs receive</c> stays alive with its input open
    /// and the receiver remembers exactly which verified chunks it was fed, so nothing is sent or written
    /// twice. When the period ends without a resume the receive is stopped and its half-received subvolume
    /// removed. <see cref="TimeSpan.Zero"/> ends a receive as soon as its connection drops (the stream then
    /// restarts from zero, or from the staged chunks with <see cref="StageChunks"/>). At most 1 day.
    /// </summary>
    public TimeSpan ResumeGracePeriod { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Also stage every verified chunk durably on disk (default false), so a stream resumes from its last
    /// verified chunk even after this host or process restarts, or after <see cref="ResumeGracePeriod"/>
    /// ran out: the staged prefix is replayed into a fresh <c>btrfs receive</c>. The cost: the destination
    /// disk takes every stream twice (staging file and received subvolume), which halves a move where that
    /// disk is the bottleneck. Without it a dropped connection still resumes within the grace period.
    /// </summary>
    public bool StageChunks { get; set; }

    /// <summary>
    /// Staged bytes between two flushes (fdatasync) of the staging file to disk, done in the background
    /// while chunks keep flowing (default 64 MiB; at least 64 KiB). A receive that ends without completing
    /// (grace period over, receiver disposed or cancelled) is flushed in full first; this bounds what a power
    /// loss can take from a running stream (lost chunks fail their checksum when the file is reopened and
    /// are fetched again).
    /// </summary>
    public long StagingSyncBytes { get; set; } = 64L << 20;

    /// <summary>Largest chunk a sender may use, in bytes (at most 16 MiB).</summary>
    public int MaxChunkSize { get; set; } = 16 * 1024 * 1024;

    /// <summary>Throws <see cref="ArgumentException"/> naming the invalid property.</summary>
    public void Validate()
    {
        if (MaxChunkSize is < WireFormat.MinChunkSize or > WireFormat.MaxChunkSize)
        {
            throw new ArgumentException($"{nameof(VolumeReceiverOptions)}.{nameof(MaxChunkSize)} must be between {WireFormat.MinChunkSize} and {WireFormat.MaxChunkSize} bytes (got {MaxChunkSize}).", nameof(MaxChunkSize));
        }

        if (StagingSyncBytes < WireFormat.MinChunkSize)
        {
            throw new ArgumentException($"{nameof(VolumeReceiverOptions)}.{nameof(StagingSyncBytes)} must be at least {WireFormat.MinChunkSize} bytes (got {StagingSyncBytes}).", nameof(StagingSyncBytes));
        }

        if (ResumeGracePeriod < TimeSpan.Zero || ResumeGracePeriod > TimeSpan.FromDays(1))
        {
            throw new ArgumentException($"{nameof(VolumeReceiverOptions)}.{nameof(ResumeGracePeriod)} must be between 0 and 1 day (got {ResumeGracePeriod}).", nameof(ResumeGracePeriod));
        }

        if (StagingPath is not null && !Path.IsPathFullyQualified(StagingPath))
        {
            throw new ArgumentException($"{nameof(VolumeReceiverOptions)}.{nameof(StagingPath)} must be an absolute path (got '{StagingPath}').", nameof(StagingPath));
        }
    }
}
