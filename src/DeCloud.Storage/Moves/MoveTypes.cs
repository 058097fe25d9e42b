namespace DeCloud.Storage.Moves;

/// <summary>The steps of a move, in order.</summary>
public enum MoveStep
{
    /// <summary>Taking the first read-only snapshot.</summary>
    Snapshot,

    /// <summary>Sending the first snapshot in full.</summary>
    FullSend,

    /// <summary>Incremental sends while the workload still runs.</summary>
    CatchUp,

    /// <summary>The caller's freeze hook (stop the VM, fsfreeze).</summary>
    Freeze,

    /// <summary>The last incremental send of the frozen volume.</summary>
    FinalSend,

    /// <summary>Comparing received UUID and file checksum manifests on both hosts.</summary>
    Verify,

    /// <summary>The destination turns the last snapshot into the live volume; then the caller's cut-over hook.</summary>
    CutOver,

    /// <summary>Deleting the source volume and its move snapshots.</summary>
    CleanSource,

    /// <summary>The move finished.</summary>
    Completed,
}

/// <summary>Progress of a move: the step, send-stream bytes so far, the rate, and an estimate of what is left.</summary>
/// <param name="Step">The step running now.</param>
/// <param name="Bytes">Send-stream bytes carried so far by the whole move.</param>
/// <param name="TotalBytes">Estimated send-stream bytes of the current stream when known (full sends), else null.</param>
/// <param name="StreamBytes">Bytes of the current stream so far.</param>
/// <param name="BytesPerSecond">Recent rate.</param>
/// <param name="EstimatedRemaining">Estimated time left for the current stream, when the total is known.</param>
public readonly record struct MoveProgress(
    MoveStep Step,
    long Bytes,
    long? TotalBytes,
    long StreamBytes,
    double BytesPerSecond,
    TimeSpan? EstimatedRemaining);

/// <summary>Caller-supplied hooks of a move. Each may be null.</summary>
public sealed class MoveHooks
{
    /// <summary>Called before each step starts (for logs, throttling, tests).</summary>
    public Func<MoveStep, CancellationToken, ValueTask>? StepStarting { get; init; }

    /// <summary>Stops writes to the volume (stop the VM, fsfreeze) before the final incremental send.</summary>
    public Func<CancellationToken, ValueTask>? Freeze { get; init; }

    /// <summary>Undoes <see cref="Freeze"/> when the move fails after it, so the source keeps serving.</summary>
    public Func<CancellationToken, ValueTask>? Thaw { get; init; }

    /// <summary>Points the project at the destination host. Runs after verification; the source is deleted only after it returns.</summary>
    public Func<CancellationToken, ValueTask>? CutOver { get; init; }
}

/// <summary>What a finished move did.</summary>
/// <param name="VolumeName">The moved volume.</param>
/// <param name="DestinationName">Its name on the destination.</param>
/// <param name="DestinationUuid">UUID of the live volume on the destination.</param>
/// <param name="StreamBytes">Send-stream bytes carried, over all streams and attempts.</param>
/// <param name="WireBytes">Chunk payload bytes written to the network (after compression).</param>
/// <param name="ResumedBytes">Bytes that did not need re-sending because the destination had them staged.</param>
/// <param name="Streams">Number of send streams applied (full + incrementals).</param>
/// <param name="Reconnects">Connections made after the first one.</param>
/// <param name="Files">Files and directories in the verified manifest.</param>
/// <param name="Elapsed">Wall time of the move.</param>
/// <param name="Notes">Things the caller should know: fallbacks to full sends and why, cleanup problems after cut-over.</param>
public sealed record MoveResult(
    string VolumeName,
    string DestinationName,
    Guid DestinationUuid,
    long StreamBytes,
    long WireBytes,
    long ResumedBytes,
    int Streams,
    int Reconnects,
    long Files,
    TimeSpan Elapsed,
    IReadOnlyList<string> Notes);
