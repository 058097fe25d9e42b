using System.IO.Hashing;

namespace DeCloud.Storage.Moves;

/// <summary>
/// One running <c>btrfs receive</c> of one snapshot stream, which outlives the connection that started
/// it. It remembers exactly which verified chunks it has fed (count, bytes and a running digest of their
/// hashes, the same digest the sender computes over the same prefix), so a sender that reconnects within
/// the grace period resumes at the next chunk and nothing is written twice. One connection feeds it at a
/// time (under the receiver's per-stream gate); a newer connection of the same stream supersedes an older
/// one that has not noticed yet that its peer is gone (<see cref="Supersede"/>).
/// </summary>
internal sealed class ReceiveSession
{
    private readonly XxHash128 _prefix = new();
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();
    private CancellationTokenSource? _attachment;
    private ITimer? _grace;
    private long _generation;
    private long _detachments;

    public ReceiveSession(BeginStream begin, BtrfsChildProcess receive, StagingFile? staging, int queueChunks, long syncBytes)
    {
        Begin = begin;
        Receive = receive;
        Staging = staging;
        // The writers drain on their own when the session ends (a killed receive fails its writes fast), so
        // the staging writer keeps every chunk it was handed: they run on no token.
        Pipeline = new ReceivePipeline(receive.Input, staging, queueChunks, syncBytes, CancellationToken.None);
    }

    /// <summary>What the stream is: snapshot name and UUID, parent, chunk size. A resume must name the same.</summary>
    public BeginStream Begin { get; }

    public BtrfsChildProcess Receive { get; }

    public ReceivePipeline Pipeline { get; }

    /// <summary>The durable staging file, when staging is on (it receives the network chunks too).</summary>
    public StagingFile? Staging { get; }

    /// <summary>Verified chunks handed to <c>btrfs receive</c> (queued in order; they reach it unless the session ends).</summary>
    public long Fed { get; private set; }

    /// <summary>Bytes of those chunks.</summary>
    public long Bytes { get; private set; }

    /// <summary>Completes once the session has ended and its half-received subvolume is gone (or it completed).</summary>
    public Task Ended => _ended.Task;

    public bool IsEnded { get; private set; }

    /// <summary>Digest of the hashes of the <see cref="Fed"/> chunks (<see cref="WireFormat.PrefixDigest"/>).</summary>
    public byte[] Digest()
    {
        lock (_lock)
        {
            return _prefix.GetCurrentHash();
        }
    }

    /// <summary>Hands a verified chunk to the pipeline and counts it as fed.</summary>
    public async ValueTask FeedAsync(SharedChunk chunk, ReadOnlyMemory<byte> hash, CancellationToken cancellationToken)
    {
        var length = chunk.Length;
        await Pipeline.AddAsync(chunk, cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            _prefix.Append(hash.Span);
        }

        Fed++;
        Bytes += length;
    }

    /// <summary>Announces a new connection for this stream: the attached one (if any) stops reading. Returns the caller's ticket.</summary>
    public long Supersede()
    {
        lock (_lock)
        {
            var ticket = ++_generation;
            _attachment?.Cancel();
            return ticket;
        }
    }

    /// <summary>
    /// Attaches the connection holding <paramref name="ticket"/> (the stream's gate is held): stops the grace
    /// timer and returns a token that cancels its network reads when a newer connection arrives (already
    /// cancelled when one did, so the newer one gets the gate next).
    /// </summary>
    public CancellationTokenSource Attach(long ticket, CancellationToken connection)
    {
        lock (_lock)
        {
            _grace?.Dispose();
            _grace = null;
            var cts = CancellationTokenSource.CreateLinkedTokenSource(connection);
            if (ticket < _generation)
            {
                cts.Cancel();
            }

            _attachment = cts;
            return cts;
        }
    }

    /// <summary>
    /// Detaches the current connection and starts the grace timer; <paramref name="expire"/> runs when it
    /// fires with the detachment number, which <see cref="IsDetachedSince"/> checks (a resume in between wins).
    /// </summary>
    public void Detach(TimeProvider time, TimeSpan grace, Action<long> expire)
    {
        lock (_lock)
        {
            _attachment?.Dispose();
            _attachment = null;
            var number = ++_detachments;
            _grace?.Dispose();
            _grace = time.CreateTimer(_ => expire(number), null, grace, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Whether nobody attached since detachment <paramref name="number"/>.</summary>
    public bool IsDetachedSince(long number)
    {
        lock (_lock)
        {
            return !IsEnded && _attachment is null && _detachments == number;
        }
    }

    /// <summary>Marks the session ended and stops the grace timer (callers kill <c>btrfs receive</c>).</summary>
    public void MarkEnded()
    {
        lock (_lock)
        {
            IsEnded = true;
            _grace?.Dispose();
            _grace = null;
            _attachment?.Dispose();
            _attachment = null;
        }
    }

    /// <summary>Signals <see cref="Ended"/> once the session's cleanup is done.</summary>
    public void SetEnded() => _ended.TrySetResult();
}
