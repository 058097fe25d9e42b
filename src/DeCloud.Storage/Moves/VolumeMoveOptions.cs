namespace DeCloud.Storage.Moves;

/// <summary>Options of the source side of a move.</summary>
public sealed class VolumeMoveOptions
{
    /// <summary>The volume's name on the destination (default: the same name).</summary>
    public string? DestinationName { get; set; }

    /// <summary>Incremental sends while the workload still runs, before the freeze (0 to 10; default 1).</summary>
    public int CatchUpRounds { get; set; } = 1;

    /// <summary>Bytes of send stream per checksummed chunk: the unit of resume (64 KiB to 16 MiB; default 1 MiB).</summary>
    public int ChunkSize { get; set; } = 1024 * 1024;

    /// <summary>Compress chunks with Brotli (quality 1) on the wire. Worth it on slow links; chunks that do not shrink go raw.</summary>
    public bool Compress { get; set; }

    /// <summary>
    /// Connections tried per step before the move fails (1 to 100; default 3). Retries resume after the chunks the
    /// destination holds; keep <see cref="MaxAttempts"/> × <see cref="RetryDelay"/> within the destination's
    /// <c>VolumeReceiverOptions.ResumeGracePeriod</c>.
    /// </summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>Wait between a dropped connection and the next attempt.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Least time between two progress reports within a stream.</summary>
    public TimeSpan ProgressInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Throws <see cref="ArgumentException"/> naming the invalid property.</summary>
    public void Validate()
    {
        if (DestinationName is not null && VolumeName.Check(DestinationName) is { } problem)
        {
            throw new ArgumentException($"{nameof(VolumeMoveOptions)}.{nameof(DestinationName)} is invalid: {problem}.", nameof(DestinationName));
        }

        if (CatchUpRounds is < 0 or > 10)
        {
            throw new ArgumentException($"{nameof(VolumeMoveOptions)}.{nameof(CatchUpRounds)} must be 0 to 10 (got {CatchUpRounds}).", nameof(CatchUpRounds));
        }

        if (ChunkSize is < WireFormat.MinChunkSize or > WireFormat.MaxChunkSize)
        {
            throw new ArgumentException($"{nameof(VolumeMoveOptions)}.{nameof(ChunkSize)} must be {WireFormat.MinChunkSize} to {WireFormat.MaxChunkSize} bytes (got {ChunkSize}).", nameof(ChunkSize));
        }

        if (MaxAttempts is < 1 or > 100)
        {
            throw new ArgumentException($"{nameof(VolumeMoveOptions)}.{nameof(MaxAttempts)} must be 1 to 100 (got {MaxAttempts}).", nameof(MaxAttempts));
        }

        if (RetryDelay < TimeSpan.Zero || ProgressInterval < TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(VolumeMoveOptions)}.{nameof(RetryDelay)} and {nameof(ProgressInterval)} must not be negative.", nameof(RetryDelay));
        }
    }
}
