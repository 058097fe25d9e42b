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
    /// verified chunk, even after this host restarts. Staging writes every stream twice on the
    /// destination; on a disk-bound host turning it off makes a move about as fast as a raw
    /// <c>btrfs send | btrfs receive</c> pipe, at the price of restarting an interrupted stream from zero.
    /// </summary>
    public bool StageChunks { get; set; } = true;

    /// <summary>Largest chunk a sender may use, in bytes (at most 16 MiB).</summary>
    public int MaxChunkSize { get; set; } = 16 * 1024 * 1024;

    /// <summary>Throws <see cref="ArgumentException"/> naming the invalid property.</summary>
    public void Validate()
    {
        if (MaxChunkSize is < WireFormat.MinChunkSize or > WireFormat.MaxChunkSize)
        {
            throw new ArgumentException($"{nameof(VolumeReceiverOptions)}.{nameof(MaxChunkSize)} must be between {WireFormat.MinChunkSize} and {WireFormat.MaxChunkSize} bytes (got {MaxChunkSize}).", nameof(MaxChunkSize));
        }

        if (StagingPath is not null && !Path.IsPathFullyQualified(StagingPath))
        {
            throw new ArgumentException($"{nameof(VolumeReceiverOptions)}.{nameof(StagingPath)} must be an absolute path (got '{StagingPath}').", nameof(StagingPath));
        }
    }
}
