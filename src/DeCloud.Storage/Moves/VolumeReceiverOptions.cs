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
