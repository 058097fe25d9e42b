using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Storage.Moves;

/// <summary>
/// The destination side of moves: serves connections from a <see cref="VolumeMove"/> over any
/// <see cref="Stream"/> (TCP, TLS, a relay tunnel). Chunks are verified against their checksums and piped
/// into <c>btrfs receive</c>. A receive outlives a dropped connection for
/// <see cref="VolumeReceiverOptions.ResumeGracePeriod"/>, so the sender reconnects and resumes at the next
/// chunk; with <see cref="VolumeReceiverOptions.StageChunks"/> chunks are also staged on disk so a resume
/// survives a restart of this host. A half-received subvolume is always removed when its receive ends
/// without completing: grace expired, the sender aborted, the stream was bad, the server was cancelled
/// or this receiver was disposed.
/// </summary>
public sealed partial class VolumeReceiver : IAsyncDisposable
{
    private readonly BtrfsVolumes _volumes;
    private readonly VolumeReceiverOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ReceiveSession> _sessions = new(StringComparer.Ordinal);
    private bool _stagingReady;
    private volatile bool _disposed;

    /// <summary>Creates a receiver that lands volumes under <paramref name="destination"/>'s root.</summary>
    /// <param name="destination">The volumes of this host.</param>
    /// <param name="options">Options (validated here).</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="timeProvider">Clock of the resume grace period (default: the system clock).</param>
    public VolumeReceiver(BtrfsVolumes destination, VolumeReceiverOptions? options = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(destination);
        _options = options ?? new VolumeReceiverOptions();
        _options.Validate();
        _volumes = destination;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<VolumeReceiver>();
        _time = timeProvider ?? TimeProvider.System;
        StagingPath = _options.StagingPath ?? Path.Combine(destination.Root, ".staging");
    }

    /// <summary>The directory holding staged chunks.</summary>
    public string StagingPath { get; }

    /// <summary>Receives that outlive their connection right now (waiting for the sender to resume, or being fed).</summary>
    internal IReadOnlyCollection<ReceiveSession> Sessions => (IReadOnlyCollection<ReceiveSession>)_sessions.Values;

    /// <summary>
    /// Removes what a receiver that was killed outright (power loss, SIGKILL) left behind: writable
    /// move subvolumes, which only an unfinished <c>btrfs receive</c> leaves (a completed receive is
    /// read-only). Staged chunks are kept for a resume; receives this instance is running are left alone.
    /// Call at host start, before serving. Returns the names removed.
    /// </summary>
    public async Task<IReadOnlyList<string>> RemoveHalfReceivedAsync(CancellationToken cancellationToken = default)
    {
        var removed = new List<string>();
        foreach (var s in await _volumes.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!s.IsReadOnly && s.ReceivedUuid is null && s.Name.Contains("@move-", StringComparison.Ordinal) && !_sessions.ContainsKey(s.Name))
            {
                Log.RemovingHalfReceived(_logger, s.Name);
                await _volumes.DeleteAsync(s.Name, cancellationToken).ConfigureAwait(false);
                removed.Add(s.Name);
            }
        }

        return removed;
    }

    /// <summary>
    /// Ends every receive still waiting for its sender: kills <c>btrfs receive</c>, removes the half-received
    /// subvolume, flushes staged chunks (kept for a resume after restart). Call when the host stops.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        await EndSessionsAsync(string.Empty, deleteStaging: false).ConfigureAwait(false);
    }

    /// <summary>
    /// Serves one connection until the sender closes it. Throws <see cref="TransferException"/> when the
    /// peer breaks the protocol or disconnects in the middle of a stream; the destination is left
    /// clean either way (verified chunks stay staged for a resume). The caller owns <paramref name="connection"/>.
    /// </summary>
    public async Task ServeAsync(Stream connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var channel = new FrameChannel(connection, WireFormat.ChunkHeaderSize + _options.MaxChunkSize);
        var session = new Session();
        try
        {
            while (true)
            {
                var next = await channel.TryReceiveAsync(cancellationToken).ConfigureAwait(false);
                if (next is not { } frame)
                {
                    return;
                }

                using (frame)
                {
                    await DispatchAsync(channel, session, frame, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (TransferException ex) when (ex.Reason == TransferFailure.ProtocolViolation)
        {
            Log.ProtocolViolation(_logger, ex.Message);
            await TrySendErrorAsync(channel, WireStatus.InvalidRequest, ex.Message).ConfigureAwait(false);
            throw;
        }
    }

    private async Task DispatchAsync(FrameChannel channel, Session session, Frame frame, CancellationToken ct)
    {
        if (frame.Type != FrameType.Hello && session.MoveId is null)
        {
            throw new TransferException(TransferFailure.ProtocolViolation, $"A {frame.Type} frame arrived before Hello.");
        }

        switch (frame.Type)
        {
            case FrameType.Hello:
                await HelloAsync(channel, session, frame, ct).ConfigureAwait(false);
                break;
            case FrameType.BeginStream:
                await ReceiveStreamAsync(channel, session, BeginStream.Read(frame), ct).ConfigureAwait(false);
                break;
            case FrameType.Verify:
                await VerifyAsync(channel, session, frame.Reader().Str("snapshot"), ct).ConfigureAwait(false);
                break;
            case FrameType.Finalize:
                await FinalizeAsync(channel, session, frame.Reader().Str("snapshot"), ct).ConfigureAwait(false);
                break;
            case FrameType.Complete:
                await CleanMoveAsync(session, deleteTarget: false, ct).ConfigureAwait(false);
                await ReplyAsync(channel, WireStatus.Ok, "move snapshots removed", Guid.Empty, ct).ConfigureAwait(false);
                break;
            case FrameType.Abort:
                Log.Aborted(_logger, session.MoveId!, frame.Reader().Str("reason"));
                await CleanMoveAsync(session, deleteTarget: true, ct).ConfigureAwait(false);
                await ReplyAsync(channel, WireStatus.Ok, "move aborted and cleaned", Guid.Empty, ct).ConfigureAwait(false);
                break;
            default:
                throw new TransferException(TransferFailure.ProtocolViolation, $"Unexpected {frame.Type} frame.");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9-]{1,64}$")]
    internal static partial Regex MoveIdPattern();

    private async Task HelloAsync(FrameChannel channel, Session session, Frame frame, CancellationToken ct)
    {
        var r = frame.Reader();
        var magic = r.U32("magic");
        var version = r.U16("version");
        var moveId = r.Str("moveId");
        var target = r.Str("target");
        if (magic != WireFormat.Magic || version != WireFormat.Version)
        {
            await SendErrorAsync(channel, WireStatus.VersionMismatch, $"expected protocol DCSM v{WireFormat.Version}, got magic {magic:X8} v{version}", ct).ConfigureAwait(false);
            throw new TransferException(TransferFailure.ProtocolViolation, $"Peer speaks magic {magic:X8} version {version}.");
        }

        if (!MoveIdPattern().IsMatch(moveId) || VolumeName.Check(target) is not null)
        {
            var problem = VolumeName.Check(target) ?? $"move id '{moveId}' must be 1-64 letters, digits or '-'";
            await SendHelloReplyAsync(channel, WireStatus.InvalidRequest, problem, ct).ConfigureAwait(false);
            return;
        }

        var existing = await _volumes.FindAsync(target, ct).ConfigureAwait(false);
        if (existing is not null && !await IsFromMoveAsync(existing, moveId, ct).ConfigureAwait(false))
        {
            await SendHelloReplyAsync(channel, WireStatus.TargetExists, $"a volume named '{target}' already exists on the destination", ct).ConfigureAwait(false);
            return;
        }

        session.MoveId = moveId;
        session.Target = target;
        if (_options.StageChunks)
        {
            await EnsureStagingDirectoryAsync(ct).ConfigureAwait(false);
        }

        await SendHelloReplyAsync(channel, WireStatus.Ok, "ready", ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Creates the staging directory with nodatacow (<c>chattr +C</c>): staged chunks carry their own
    /// XxHash128, so Btrfs data checksums and copy-on-write would only double the CPU cost of staging.
    /// </summary>
    private async Task EnsureStagingDirectoryAsync(CancellationToken ct)
    {
        if (_stagingReady)
        {
            return;
        }

        Directory.CreateDirectory(StagingPath);
        try
        {
            await _volumes.Runner.RunChattrAsync(["+C", StagingPath], ct).ConfigureAwait(false);
        }
        catch (BtrfsCommandException ex)
        {
            // Not fatal (staging on a filesystem without the attribute works, only slower).
            Log.NoCowUnavailable(_logger, StagingPath, ex.Message);
        }

        _stagingReady = true;
    }

    private async Task<bool> IsFromMoveAsync(SubvolumeInfo target, string moveId, CancellationToken ct)
    {
        var marker = MoveMarker(moveId);
        foreach (var s in await _volumes.ListAsync(ct).ConfigureAwait(false))
        {
            if (s.Name.Contains(marker, StringComparison.Ordinal) && s.Uuid == target.ParentUuid)
            {
                return true;
            }
        }

        return false;
    }

    internal static string MoveMarker(string moveId) => "@move-" + moveId + "-";

    private async Task ReceiveStreamAsync(FrameChannel channel, Session session, BeginStream begin, CancellationToken ct)
    {
        var problem = VolumeName.Check(begin.SnapshotName);
        if (problem is not null || !begin.SnapshotName.Contains(MoveMarker(session.MoveId!), StringComparison.Ordinal))
        {
            await SendReadyAsync(channel, WireStatus.InvalidRequest, 0, new byte[16],
                problem ?? $"snapshot '{begin.SnapshotName}' does not belong to move {session.MoveId}", ct).ConfigureAwait(false);
            return;
        }

        if (begin.ChunkSize is < WireFormat.MinChunkSize || begin.ChunkSize > _options.MaxChunkSize)
        {
            throw new TransferException(TransferFailure.ProtocolViolation, $"Chunk size {begin.ChunkSize} is outside {WireFormat.MinChunkSize}..{_options.MaxChunkSize}.");
        }

        var gate = Gate(begin.SnapshotName);
        // A connection still attached to this stream has lost its peer without noticing (a dropped network
        // path leaves no FIN): the newest connection wins, the older one stops reading and lets go of the gate.
        var ticket = _sessions.TryGetValue(begin.SnapshotName, out var attached) ? attached.Supersede() : 0;
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var live = await OpenSessionAsync(channel, begin, ct).ConfigureAwait(false);
            if (live is not null)
            {
                await FeedAsync(channel, live, ticket, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            gate.Release();
        }
    }

    private SemaphoreSlim Gate(string snapshot) => _locks.GetOrAdd(snapshot, _ => new SemaphoreSlim(1, 1));

    /// <summary>
    /// Answers BeginStream and agrees with the sender where to resume: at the next chunk of a live session,
    /// after the staged prefix of a durable staging file, or at zero. Returns the session to feed, or null when
    /// the stream needs no data (already received, parent missing, refused).
    /// </summary>
    private async Task<ReceiveSession?> OpenSessionAsync(FrameChannel channel, BeginStream begin, CancellationToken ct)
    {
        var name = begin.SnapshotName;
        if (_sessions.TryGetValue(name, out var live))
        {
            if (live.Begin.SnapshotUuid != begin.SnapshotUuid)
            {
                await SendReadyAsync(channel, WireStatus.InvalidRequest, 0, new byte[16],
                    $"a receive of '{name}' from source snapshot {live.Begin.SnapshotUuid} is in progress; this stream is from snapshot {begin.SnapshotUuid}", ct).ConfigureAwait(false);
                return null;
            }

            if (live.Begin.ParentUuid != begin.ParentUuid || live.Begin.ChunkSize != begin.ChunkSize)
            {
                // The same snapshot sent another way (a full send after its parent vanished): its bytes differ from the first byte.
                Log.StreamChanged(_logger, name);
                await EndSessionAsync(live, deleteStaging: true).ConfigureAwait(false);
            }
            else
            {
                var digest = live.Digest();
                await SendReadyAsync(channel, WireStatus.Ok, live.Fed, digest, "resuming", ct).ConfigureAwait(false);
                var from = await ReadResumeFromAsync(channel, name, live.Fed, n => n == live.Fed ? digest : null, ct).ConfigureAwait(false);
                if (from == live.Fed)
                {
                    Log.ResumingLive(_logger, name, live.Fed, live.Bytes);
                    return live;
                }

                // The sender's regenerated stream differs from what btrfs receive already took: start over.
                Log.StreamChanged(_logger, name);
                await EndSessionAsync(live, deleteStaging: true).ConfigureAwait(false);
                return await StartSessionAsync(begin, OpenStaging(begin), 0, ct).ConfigureAwait(false);
            }
        }

        var list = await _volumes.ListAsync(ct).ConfigureAwait(false);
        var existing = list.FirstOrDefault(s => s.Name == name);
        if (existing is not null)
        {
            if (existing.IsReadOnly && existing.ReceivedUuid == begin.SnapshotUuid)
            {
                await SendReadyAsync(channel, WireStatus.AlreadyReceived, 0, new byte[16], "already received", ct).ConfigureAwait(false);
                return null;
            }

            Log.RemovingHalfReceived(_logger, name);
            await _volumes.DeleteAsync(name, ct).ConfigureAwait(false);
        }

        if (begin.ParentUuid is { } parent && !list.Any(s => s.IsReadOnly && (s.ReceivedUuid == parent || s.Uuid == parent)))
        {
            await SendReadyAsync(channel, WireStatus.ParentMissing, 0, new byte[16],
                $"the parent snapshot '{begin.ParentName}' ({parent}) is not on the destination", ct).ConfigureAwait(false);
            return null;
        }

        var staging = OpenStaging(begin);
        try
        {
            var staged = staging?.Count ?? 0;
            await SendReadyAsync(channel, WireStatus.Ok, staged, staging is null ? new byte[16] : WireFormat.PrefixDigest(staging.Hashes, staged), "ready", ct).ConfigureAwait(false);
            var from = await ReadResumeFromAsync(channel, name, staged, n => WireFormat.PrefixDigest(staging!.Hashes, (int)n), ct).ConfigureAwait(false);
            staging?.TruncateTo((int)from);
            if (from > 0)
            {
                Log.Resuming(_logger, name, from);
            }
        }
        catch
        {
            staging?.Dispose();
            throw;
        }

        return await StartSessionAsync(begin, staging, (int)(staging?.Count ?? 0), ct).ConfigureAwait(false);
    }

    /// <summary>Opens (or creates) the stream's durable staging file when staging is on; logs a discarded tail.</summary>
    private StagingFile? OpenStaging(BeginStream begin)
    {
        if (!_options.StageChunks)
        {
            return null;
        }

        var staging = StagingFile.Open(Path.Combine(StagingPath, begin.SnapshotName + ".stage"), begin.SnapshotUuid, begin.ParentUuid ?? Guid.Empty, begin.ChunkSize);
        if (staging.Discarded is { } discarded)
        {
            Log.StagedChunkDiscarded(_logger, begin.SnapshotName, discarded.Chunk, discarded.Reason, discarded.Bytes);
        }

        return staging;
    }

    /// <summary>
    /// Reads ResumeFrom: the first chunk the sender will send and, past zero, its digest of the chunks before
    /// it, which must equal ours (<paramref name="expected"/>; null when we cannot resume there).
    /// </summary>
    private static async Task<long> ReadResumeFromAsync(FrameChannel channel, string name, long held, Func<long, byte[]?> expected, CancellationToken ct)
    {
        using var resume = await channel.ReceiveAsync(FrameType.ResumeFrom, ct).ConfigureAwait(false);
        var r = resume.Reader();
        var from = r.U64("chunkIndex");
        if (from == 0)
        {
            return 0;
        }

        if (from > (ulong)held)
        {
            throw new TransferException(TransferFailure.ProtocolViolation, $"ResumeFrom {from} for '{name}' is past the {held} verified chunks this destination holds.");
        }

        var digest = r.Bytes(WireFormat.HashSize, "prefixDigest");
        if (expected((long)from) is not { } ours)
        {
            throw new TransferException(TransferFailure.ProtocolViolation,
                $"ResumeFrom {from} for '{name}' is refused: btrfs receive has already taken {held} chunks and cannot go back; resume from {held} or from 0.");
        }

        if (!ours.AsSpan().SequenceEqual(digest))
        {
            throw new TransferException(TransferFailure.ProtocolViolation,
                $"ResumeFrom {from} for '{name}' is refused: the sender's digest of chunks 0..{from - 1} differs from the destination's, so it is resuming another stream.");
        }

        return (long)from;
    }

    /// <summary>Bytes each queue of the receive pipeline may hold (at least two chunks).</summary>
    private const int QueueBytes = 16 << 20;

    /// <summary>Starts btrfs receive for a new session and replays the first <paramref name="replay"/> staged chunks into it.</summary>
    private async Task<ReceiveSession> StartSessionAsync(BeginStream begin, StagingFile? staging, int replay, CancellationToken ct)
    {
        BtrfsChildProcess receive;
        try
        {
            receive = _volumes.Runner.StartReceive(_volumes.Root);
        }
        catch
        {
            staging?.Dispose();
            throw;
        }

        var session = new ReceiveSession(begin, receive, staging, Math.Max(2, QueueBytes / begin.ChunkSize), _options.StagingSyncBytes);
        _sessions[begin.SnapshotName] = session;
        try
        {
            for (var i = 0; i < replay; i++)
            {
                if (ReplayHook is { } hook)
                {
                    await hook(begin.SnapshotName, i, ct).ConfigureAwait(false);
                }

                var buffer = ArrayPool<byte>.Shared.Rent(begin.ChunkSize);
                int n;
                try
                {
                    n = await staging!.ReadAsync(i, buffer, ct).ConfigureAwait(false);
                }
                catch
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    throw;
                }

                // No hash on the shared chunk: it is already staged.
                await session.FeedAsync(new SharedChunk(buffer, 0, n, null, null), staging.Hashes[i], ct).ConfigureAwait(false);
            }
        }
        catch
        {
            await EndSessionAsync(session, deleteStaging: false).ConfigureAwait(false);
            throw;
        }

        return session;
    }

    /// <summary>
    /// Feeds network chunks into <paramref name="session"/> until EndStream, then completes it. A dropped
    /// connection keeps the session for the grace period; a cancelled server or a broken protocol ends it.
    /// </summary>
    private async Task FeedAsync(FrameChannel channel, ReceiveSession session, long ticket, CancellationToken ct)
    {
        var name = session.Begin.SnapshotName;
        var failure = (Status: WireStatus.Ok, Message: string.Empty);
        var count = 0UL;
        var bytes = 0UL;
        using (var attachment = session.Attach(ticket, ct))
        {
            var hash = new byte[WireFormat.HashSize];
            try
            {
                while (true)
                {
                    var frame = await channel.TryReceiveAsync(attachment.Token).ConfigureAwait(false)
                        ?? throw new TransferException(TransferFailure.PeerDisconnected, $"The sender closed the connection during stream '{name}'.");
                    if (frame.Type == FrameType.EndStream)
                    {
                        using (frame)
                        {
                            var r = frame.Reader();
                            count = r.U64("chunkCount");
                            bytes = r.U64("totalBytes");
                        }

                        break;
                    }

                    if (frame.Type != FrameType.Chunk)
                    {
                        frame.Dispose();
                        throw new TransferException(TransferFailure.ProtocolViolation, $"Expected Chunk or EndStream, got {frame.Type}.");
                    }

                    if (failure.Status != WireStatus.Ok)
                    {
                        frame.Dispose(); // Draining to EndStream after a bad chunk.
                        continue;
                    }

                    var chunk = DecodeChunk(frame, session.Begin.ChunkSize);
                    if (chunk.Index != session.Fed)
                    {
                        chunk.Dispose();
                        throw new TransferException(TransferFailure.ProtocolViolation, $"Chunk {chunk.Index} arrived where chunk {session.Fed} was expected.");
                    }

                    XxHash128.Hash(chunk.Data.Span, hash);
                    if (!hash.AsSpan().SequenceEqual(chunk.Hash.Span))
                    {
                        Log.BadChunk(_logger, name, (int)session.Fed);
                        failure = (WireStatus.ChunkChecksum, $"chunk {session.Fed} of '{name}' failed its checksum; the {session.Fed} verified chunks before it are kept for a resume");
                        chunk.Dispose();
                        continue;
                    }

                    var verified = chunk.Hash;
                    await session.FeedAsync(chunk.Share(), verified, ct).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested && attachment.IsCancellationRequested)
            {
                Log.Superseded(_logger, name, session.Fed);
                await DetachAsync(session).ConfigureAwait(false);
                throw new TransferException(TransferFailure.PeerDisconnected, $"A newer connection took over stream '{name}' after {session.Fed} chunks.");
            }
            catch (TransferException ex) when (ex.Reason is TransferFailure.PeerDisconnected or TransferFailure.Truncated)
            {
                await DetachAsync(session).ConfigureAwait(false);
                throw;
            }
            catch
            {
                // The server is stopping, or the peer broke the protocol mid-stream: the half-received subvolume goes.
                await EndSessionAsync(session, deleteStaging: false).ConfigureAwait(false);
                throw;
            }
        }

        if (failure.Status != WireStatus.Ok)
        {
            // A bad chunk: everything before it was fed, the sender resumes right there.
            await DetachAsync(session).ConfigureAwait(false);
            await SendStreamResultAsync(channel, failure.Status, Guid.Empty, failure.Message, ct).ConfigureAwait(false);
            return;
        }

        var (status, message, received) = count != (ulong)session.Fed || bytes != (ulong)session.Bytes
            ? (WireStatus.InvalidRequest, $"stream ended with {count} chunks / {bytes} bytes announced but {session.Fed} / {session.Bytes} received", Guid.Empty)
            : await CompleteSessionAsync(session, ct).ConfigureAwait(false);
        if (status != WireStatus.Ok)
        {
            // The stream itself is bad (btrfs receive refused it): neither the half-received subvolume nor a staged copy is of use.
            await EndSessionAsync(session, deleteStaging: true).ConfigureAwait(false);
        }

        await SendStreamResultAsync(channel, status, received, message, ct).ConfigureAwait(false);
    }

    /// <summary>Closes btrfs receive's input after the last chunk and checks what it made.</summary>
    private async Task<(WireStatus Status, string Message, Guid Received)> CompleteSessionAsync(ReceiveSession session, CancellationToken ct)
    {
        var begin = session.Begin;
        var outcome = await session.Pipeline.CompleteAsync(flush: false).ConfigureAwait(false);
        if (outcome.StagingError is { } stagingError)
        {
            Log.StagingFailed(_logger, begin.SnapshotName, stagingError);
        }

        var receive = session.Receive;
        try
        {
            await receive.Input.DisposeAsync().ConfigureAwait(false);
            await receive.WaitForSuccessAsync(ct, begin.SnapshotName).ConfigureAwait(false);
        }
        catch (QuotaExceededException ex)
        {
            return (WireStatus.QuotaExceeded, ex.InnerException?.Message ?? ex.Message, Guid.Empty);
        }
        catch (StorageFullException ex)
        {
            return (WireStatus.NoSpace, ex.InnerException?.Message ?? ex.Message, Guid.Empty);
        }
        catch (BtrfsCommandException ex)
        {
            return (WireStatus.ReceiveFailed, outcome.ReceiveError is { } writeError ? $"{ex.Message} ({writeError})" : ex.Message, Guid.Empty);
        }
        catch (IOException ex)
        {
            // Closing stdin of a receive that already exited.
            return (WireStatus.ReceiveFailed, ex.Message, Guid.Empty);
        }

        var info = await _volumes.FindAsync(begin.SnapshotName, ct).ConfigureAwait(false);
        if (info is null || info.ReceivedUuid != begin.SnapshotUuid || !info.IsReadOnly)
        {
            return (WireStatus.ReceiveFailed, $"btrfs receive finished but '{begin.SnapshotName}' is missing or its received UUID is not {begin.SnapshotUuid}", Guid.Empty);
        }

        session.MarkEnded();
        _sessions.TryRemove(new KeyValuePair<string, ReceiveSession>(begin.SnapshotName, session));
        await receive.DisposeAsync().ConfigureAwait(false);
        session.Staging?.Delete();
        session.SetEnded();
        Log.Received(_logger, begin.SnapshotName, session.Bytes);
        return (WireStatus.Ok, "received", info.Uuid);
    }

    /// <summary>The connection is gone: keep the session for the grace period (or end it at once when there is none).</summary>
    private async Task DetachAsync(ReceiveSession session)
    {
        var grace = _options.ResumeGracePeriod;
        if (grace <= TimeSpan.Zero || _disposed)
        {
            await EndSessionAsync(session, deleteStaging: false).ConfigureAwait(false);
            return;
        }

        session.Detach(_time, grace, number => _ = ExpireAsync(session, number));
        Log.Kept(_logger, session.Begin.SnapshotName, session.Fed, session.Bytes, grace);
    }

    private async Task ExpireAsync(ReceiveSession session, long detachment)
    {
        var gate = Gate(session.Begin.SnapshotName);
        await gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (session.IsDetachedSince(detachment))
            {
                Log.Expired(_logger, session.Begin.SnapshotName, session.Fed, _options.ResumeGracePeriod);
                await EndSessionAsync(session, deleteStaging: false).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is StorageException or IOException)
        {
            Log.CleanupFailed(_logger, session.Begin.SnapshotName, ex.Message);
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Ends a session that did not complete: kills btrfs receive, lets the staging writer finish what it holds
    /// and flushes it (unless <paramref name="deleteStaging"/>), and removes the half-received subvolume.
    /// The caller holds the stream's gate (or owns the session outright).
    /// </summary>
    private async Task EndSessionAsync(ReceiveSession session, bool deleteStaging)
    {
        if (session.IsEnded)
        {
            await session.Ended.ConfigureAwait(false);
            return;
        }

        var name = session.Begin.SnapshotName;
        session.MarkEnded();
        _sessions.TryRemove(new KeyValuePair<string, ReceiveSession>(name, session));
        try
        {
            session.Receive.Kill();
            var outcome = await session.Pipeline.CompleteAsync(flush: session.Staging is not null && !deleteStaging).ConfigureAwait(false);
            if (outcome.StagingError is { } stagingError)
            {
                Log.StagingFailed(_logger, name, stagingError);
            }

            if (session.Staging is not null && !deleteStaging)
            {
                Log.Interrupted(_logger, name, outcome.Staged, outcome.Durable);
            }

            await RemovePartialAsync(session.Receive, name).ConfigureAwait(false);
        }
        finally
        {
            if (deleteStaging)
            {
                session.Staging?.Delete();
            }
            else
            {
                session.Staging?.Dispose();
            }

            session.SetEnded();
        }
    }

    /// <summary>Ends every live session whose stream name contains <paramref name="marker"/> (all of them for an empty marker).</summary>
    private async Task EndSessionsAsync(string marker, bool deleteStaging)
    {
        foreach (var (name, session) in _sessions.ToArray())
        {
            if (!name.Contains(marker, StringComparison.Ordinal))
            {
                continue;
            }

            var gate = Gate(name);
            session.Supersede();
            await gate.WaitAsync().ConfigureAwait(false);
            try
            {
                await EndSessionAsync(session, deleteStaging).ConfigureAwait(false);
            }
            finally
            {
                gate.Release();
            }
        }
    }

    /// <summary>Test seam: runs before each staged chunk is replayed into btrfs receive (snapshot name, chunk index).</summary>
    internal Func<string, int, CancellationToken, ValueTask>? ReplayHook { get; set; }

    private async Task RemovePartialAsync(BtrfsChildProcess receive, string name)
    {
        await receive.DisposeAsync().ConfigureAwait(false);
        try
        {
            if (await _volumes.FindAsync(name, CancellationToken.None).ConfigureAwait(false) is not null)
            {
                Log.RemovingHalfReceived(_logger, name);
                await _volumes.DeleteAsync(name, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (StorageException ex)
        {
            Log.CleanupFailed(_logger, name, ex.Message);
        }
    }

    private sealed class DecodedChunk(long index, byte[] buffer, int dataOffset, int length, ReadOnlyMemory<byte> hash, IDisposable? owner) : IDisposable
    {
        public long Index => index;

        public byte[] Buffer => buffer;

        public int DataOffset => dataOffset;

        public ReadOnlyMemory<byte> Data => buffer.AsMemory(dataOffset, length);

        public ReadOnlyMemory<byte> Hash => hash;

        /// <summary>Hands the buffer over to a <see cref="SharedChunk"/> (this object must not be disposed after).</summary>
        public SharedChunk Share() => new(buffer, dataOffset, length, hash.ToArray(), owner);

        public void Dispose()
        {
            if (owner is not null)
            {
                owner.Dispose();
            }
            else
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private static DecodedChunk DecodeChunk(Frame frame, int chunkSize)
    {
        try
        {
            var r = frame.Reader();
            var index = (long)r.U64("index");
            var raw = (int)r.U32("rawLength");
            var hash = frame.Buffer.AsMemory(12, WireFormat.HashSize).ToArray();
            var payload = frame.Length - WireFormat.ChunkHeaderSize;
            if (raw <= 0 || raw > chunkSize || payload < 0)
            {
                throw new TransferException(TransferFailure.ProtocolViolation, $"Chunk {index} declares {raw} raw bytes (chunk size {chunkSize}).");
            }

            if ((frame.Flags & WireFormat.FlagBrotli) == 0)
            {
                if (payload != raw)
                {
                    throw new TransferException(TransferFailure.ProtocolViolation, $"Chunk {index} carries {payload} bytes but declares {raw}.");
                }

                return new DecodedChunk(index, frame.Buffer, WireFormat.ChunkHeaderSize, raw, hash, frame);
            }

            var output = ArrayPool<byte>.Shared.Rent(raw);
            if (!BrotliDecoder.TryDecompress(frame.Buffer.AsSpan(WireFormat.ChunkHeaderSize, payload), output.AsSpan(0, raw), out var written) || written != raw)
            {
                // Undecodable data is a corrupted chunk, like a bad checksum: zero it so the hash check fails.
                output.AsSpan(0, raw).Clear();
            }

            frame.Dispose();
            return new DecodedChunk(index, output, 0, raw, hash, null);
        }
        catch
        {
            frame.Dispose();
            throw;
        }
    }

    private async Task VerifyAsync(FrameChannel channel, Session session, string snapshot, CancellationToken ct)
    {
        var info = VolumeName.IsValid(snapshot) && snapshot.Contains(MoveMarker(session.MoveId!), StringComparison.Ordinal)
            ? await _volumes.FindAsync(snapshot, ct).ConfigureAwait(false)
            : null;
        var w = new WireWriter();
        if (info is null)
        {
            w.U8((byte)WireStatus.NotFound).Guid(Guid.Empty).Bytes(new byte[16]).U64(0).U64(0).Str($"no received snapshot '{snapshot}' of this move");
        }
        else
        {
            var manifest = await VolumeManifest.ComputeAsync(info.Path, ct).ConfigureAwait(false);
            w.U8((byte)WireStatus.Ok).Guid(info.ReceivedUuid ?? Guid.Empty).Bytes(manifest.Digest).U64((ulong)manifest.Entries).U64((ulong)manifest.Bytes).Str("ok");
        }

        await channel.SendAsync(FrameType.VerifyReply, w, ct).ConfigureAwait(false);
    }

    private async Task FinalizeAsync(FrameChannel channel, Session session, string snapshot, CancellationToken ct)
    {
        var info = VolumeName.IsValid(snapshot) && snapshot.Contains(MoveMarker(session.MoveId!), StringComparison.Ordinal)
            ? await _volumes.FindAsync(snapshot, ct).ConfigureAwait(false)
            : null;
        if (info is null)
        {
            await ReplyAsync(channel, WireStatus.NotFound, $"no received snapshot '{snapshot}' of this move", Guid.Empty, ct).ConfigureAwait(false);
            return;
        }

        var target = await _volumes.FindAsync(session.Target!, ct).ConfigureAwait(false);
        if (target is not null)
        {
            var status = target.ParentUuid == info.Uuid ? WireStatus.Ok : WireStatus.TargetExists;
            await ReplyAsync(channel, status, status == WireStatus.Ok ? "already finalized" : $"'{session.Target}' exists", target.Uuid, ct).ConfigureAwait(false);
            return;
        }

        var created = await _volumes.SnapshotAsync(snapshot, session.Target!, readOnly: false, ct).ConfigureAwait(false);
        Log.Finalized(_logger, session.Target!, snapshot);
        await ReplyAsync(channel, WireStatus.Ok, "finalized", created.Uuid, ct).ConfigureAwait(false);
    }

    private async Task CleanMoveAsync(Session session, bool deleteTarget, CancellationToken ct)
    {
        var marker = MoveMarker(session.MoveId!);
        await EndSessionsAsync(marker, deleteStaging: true).ConfigureAwait(false);
        var list = await _volumes.ListAsync(ct).ConfigureAwait(false);
        var moveSnapshots = list.Where(s => s.Name.Contains(marker, StringComparison.Ordinal)).ToList();
        if (deleteTarget && list.FirstOrDefault(s => s.Name == session.Target) is { } target &&
            moveSnapshots.Any(s => s.Uuid == target.ParentUuid))
        {
            await _volumes.DeleteAsync(target.Name, ct).ConfigureAwait(false);
        }

        foreach (var s in moveSnapshots)
        {
            await _volumes.DeleteAsync(s.Name, ct).ConfigureAwait(false);
        }

        if (Directory.Exists(StagingPath))
        {
            foreach (var file in Directory.GetFiles(StagingPath, "*" + marker + "*.stage"))
            {
                File.Delete(file);
            }
        }
    }

    private static ValueTask SendHelloReplyAsync(FrameChannel channel, WireStatus status, string message, CancellationToken ct) =>
        channel.SendAsync(FrameType.HelloReply, new WireWriter().U8((byte)status).Str(message), ct);

    private static ValueTask SendReadyAsync(FrameChannel channel, WireStatus status, long staged, byte[] digest, string message, CancellationToken ct) =>
        channel.SendAsync(FrameType.StreamReady, new WireWriter().U8((byte)status).U64((ulong)staged).Bytes(digest).Str(message), ct);

    private static ValueTask SendStreamResultAsync(FrameChannel channel, WireStatus status, Guid received, string message, CancellationToken ct) =>
        channel.SendAsync(FrameType.StreamResult, new WireWriter().U8((byte)status).Guid(received).Str(Truncate(message)), ct);

    private static ValueTask ReplyAsync(FrameChannel channel, WireStatus status, string message, Guid uuid, CancellationToken ct) =>
        channel.SendAsync(FrameType.Reply, new WireWriter().U8((byte)status).Str(message).Guid(uuid), ct);

    private static ValueTask SendErrorAsync(FrameChannel channel, WireStatus status, string message, CancellationToken ct) =>
        channel.SendAsync(FrameType.Error, new WireWriter().U8((byte)status).Str(Truncate(message)), ct);

    private static async Task TrySendErrorAsync(FrameChannel channel, WireStatus status, string message)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await SendErrorAsync(channel, status, message, cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TransferException or OperationCanceledException)
        {
            // The peer is gone; nothing more to tell it.
        }
    }

    private static string Truncate(string s) => s.Length > 4000 ? s[..4000] : s;

    private sealed class Session
    {
        public string? MoveId { get; set; }

        public string? Target { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 40, Level = LogLevel.Warning, Message = "Move peer broke the protocol: {Message}")]
        public static partial void ProtocolViolation(ILogger logger, string message);

        [LoggerMessage(EventId = 41, Level = LogLevel.Information, Message = "Removing half-received subvolume {Name}")]
        public static partial void RemovingHalfReceived(ILogger logger, string name);

        [LoggerMessage(EventId = 42, Level = LogLevel.Information, Message = "Resuming stream {Name} from chunk {Chunk} (staged on disk)")]
        public static partial void Resuming(ILogger logger, string name, long chunk);

        [LoggerMessage(EventId = 52, Level = LogLevel.Information, Message = "Stream {Name} lost its connection after {Chunks} verified chunks ({Bytes} bytes) fed to btrfs receive; the receive waits {Grace} for the sender to resume")]
        public static partial void Kept(ILogger logger, string name, long chunks, long bytes, TimeSpan grace);

        [LoggerMessage(EventId = 53, Level = LogLevel.Information, Message = "Resuming stream {Name} at chunk {Chunk} in its running receive ({Bytes} bytes not re-sent)")]
        public static partial void ResumingLive(ILogger logger, string name, long chunk, long bytes);

        [LoggerMessage(EventId = 54, Level = LogLevel.Warning, Message = "Stream {Name}: no resume within {Grace} after {Chunks} chunks; the receive is stopped and the half-received subvolume removed")]
        public static partial void Expired(ILogger logger, string name, long chunks, TimeSpan grace);

        [LoggerMessage(EventId = 55, Level = LogLevel.Information, Message = "Stream {Name}: a newer connection took over after {Chunks} chunks")]
        public static partial void Superseded(ILogger logger, string name, long chunks);

        [LoggerMessage(EventId = 56, Level = LogLevel.Warning, Message = "Stream {Name} was restarted by its sender with other bytes (another parent, chunk size or prefix); its running receive starts over from zero")]
        public static partial void StreamChanged(ILogger logger, string name);

        [LoggerMessage(EventId = 43, Level = LogLevel.Warning, Message = "Chunk {Chunk} of {Name} failed its checksum")]
        public static partial void BadChunk(ILogger logger, string name, int chunk);

        [LoggerMessage(EventId = 44, Level = LogLevel.Information, Message = "Received {Name} ({Bytes} bytes)")]
        public static partial void Received(ILogger logger, string name, long bytes);

        [LoggerMessage(EventId = 45, Level = LogLevel.Information, Message = "Volume {Target} finalized from {Snapshot}")]
        public static partial void Finalized(ILogger logger, string target, string snapshot);

        [LoggerMessage(EventId = 46, Level = LogLevel.Warning, Message = "Move {MoveId} aborted by the sender: {Reason}")]
        public static partial void Aborted(ILogger logger, string moveId, string reason);

        [LoggerMessage(EventId = 47, Level = LogLevel.Error, Message = "Could not remove half-received subvolume {Name}: {Message}")]
        public static partial void CleanupFailed(ILogger logger, string name, string message);

        [LoggerMessage(EventId = 49, Level = LogLevel.Warning, Message = "Staging of {Name} stopped ({Message}); the stream continues, but a resume would start from the chunks staged so far")]
        public static partial void StagingFailed(ILogger logger, string name, string message);

        [LoggerMessage(EventId = 50, Level = LogLevel.Information, Message = "Stream {Name} interrupted: {Staged} verified chunks staged for a resume ({Durable} flushed to disk)")]
        public static partial void Interrupted(ILogger logger, string name, int staged, int durable);

        [LoggerMessage(EventId = 51, Level = LogLevel.Warning, Message = "Staged chunk {Chunk} of {Name} is unusable ({Reason}): it and every chunk after it ({Bytes} bytes) are discarded and will be fetched again")]
        public static partial void StagedChunkDiscarded(ILogger logger, string name, int chunk, string reason, long bytes);

        [LoggerMessage(EventId = 48, Level = LogLevel.Information, Message = "Staging directory {Path} stays copy-on-write: {Message}")]
        public static partial void NoCowUnavailable(ILogger logger, string path, string message);
    }
}

/// <summary>The BeginStream message.</summary>
internal sealed record BeginStream(string SnapshotName, Guid SnapshotUuid, Guid? ParentUuid, string ParentName, int ChunkSize)
{
    public WireWriter Write() => new WireWriter()
        .Str(SnapshotName).Guid(SnapshotUuid).U8(ParentUuid is null ? (byte)0 : (byte)1).Guid(ParentUuid ?? Guid.Empty).Str(ParentName).U32((uint)ChunkSize);

    public static BeginStream Read(Frame frame)
    {
        var r = frame.Reader();
        var name = r.Str("snapshot");
        var uuid = r.Guid("snapshotUuid");
        var hasParent = r.U8("hasParent");
        var parent = r.Guid("parentUuid");
        var parentName = r.Str("parentName");
        var chunk = r.U32("chunkSize");
        return new BeginStream(name, uuid, hasParent != 0 ? parent : null, parentName, (int)Math.Min(chunk, int.MaxValue));
    }
}
