namespace DeCloud.Storage.Moves;

/// <summary>Options of the destination side of moves.</summary>
public sealed class VolumeReceiverOptions
{
    /// <summary>
    /// Where verified chunks are staged while a stream arrives (default: <c>.staging</c> under the
    /// volumes root, on the same filesystem). Staged chunks of an interrupted stream stay until it
    /// is resumed, completed or aborted.
    /// </summary>
    public string? StagingPath { get; set; }

    /// <summary>
    /// Stage verified chunks on disk (default true) so an interrupted stream resumes from its last
    /// verified chunk, even after this host restarts. Staging runs concurrently with <c>btrfs receive</c>;
    /// turning it off saves the staging writes, at the price of restarting an interrupted stream from zero.
    /// </summary>
    public bool StageChunks { get; set; } = true;

    /// <summary>
    /// Staged bytes between two flushes (fdatasync) of the staging file to disk, done in the background
    /// while chunks keep flowing (default 64 MiB; at least 64 KiB). An interrupted stream is always
    /// flushed in full before its connection is given up; this bounds what a power loss can take from a
    /// running stream (lost chunks fail their checksum when the file is reopened and are fetched again).
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

        if (StagingPath is not null && !Path.IsPathFullyQualified(StagingPath))
        {
            throw new ArgumentException($"{nameof(VolumeReceiverOptions)}.{nameof(StagingPath)} must be an absolute path (got '{StagingPath}').", nameof(StagingPath));
        }
    }
}
