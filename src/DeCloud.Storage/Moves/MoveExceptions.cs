namespace DeCloud.Storage.Moves;

/// <summary>Why a transfer between hosts failed.</summary>
public enum TransferFailure
{
    /// <summary>The peer closed or reset the connection at a frame boundary or while writing.</summary>
    PeerDisconnected,

    /// <summary>The connection ended in the middle of a frame.</summary>
    Truncated,

    /// <summary>A chunk arrived whose checksum does not match its data.</summary>
    ChunkChecksumMismatch,

    /// <summary>A frame broke the protocol (unknown type, oversized, out of order, bad field).</summary>
    ProtocolViolation,

    /// <summary><c>btrfs receive</c> on the destination rejected the stream.</summary>
    ReceiveFailed,

    /// <summary>The destination filesystem ran out of space.</summary>
    DestinationFull,

    /// <summary>The destination's quota is exhausted.</summary>
    DestinationQuotaExceeded,

    /// <summary>The destination refused the request (name taken, invalid name, unknown snapshot).</summary>
    Rejected,
}

/// <summary>A transfer failed; <see cref="StorageException.IsTransient"/> is true when a retry resumes it.</summary>
public sealed class TransferException : StorageException
{
    internal TransferException(TransferFailure reason, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Reason = reason;
    }

    /// <summary>What went wrong.</summary>
    public TransferFailure Reason { get; }

    /// <inheritdoc />
    public override bool IsTransient => Reason is TransferFailure.PeerDisconnected or TransferFailure.Truncated or TransferFailure.ChunkChecksumMismatch;
}

/// <summary>
/// A move failed at <see cref="Step"/>. The source volume is intact and serving (thawed if it had
/// been frozen); the move's snapshots were removed on the source and, when reachable, the destination.
/// </summary>
public sealed class MoveFailedException : StorageException
{
    internal MoveFailedException(string volumeName, MoveStep step, string message, Exception? innerException = null)
        : base($"Moving volume '{volumeName}' failed at step {step}: {message} The source volume is intact.", innerException)
    {
        VolumeName = volumeName;
        Step = step;
    }

    /// <summary>The volume that was being moved.</summary>
    public string VolumeName { get; }

    /// <summary>The step that failed.</summary>
    public MoveStep Step { get; }
}
