using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Storage.Moves;

/// <summary>
/// The destination side of moves: serves one connection from a <see cref="VolumeMove"/> at a time per
/// call, over any <see cref="Stream"/> (TCP, TLS, a relay tunnel). Chunks are verified against their
/// checksums, staged on disk and piped into <c>btrfs receive</c>; a half-received subvolume is always
/// removed, whether the stream fails, the peer disconnects or the server is cancelled.
/// </summary>
public sealed partial class VolumeReceiver
{
    private readonly BtrfsVolumes _volumes;
    private readonly VolumeReceiverOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new(StringComparer.Ordinal);
    private bool _stagingReady;

    /// <summary>Creates a receiver that lands volumes under <paramref name="destination"/>'s root.</summary>
    public VolumeReceiver(BtrfsVolumes destination, VolumeReceiverOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(destination);
        _options = options ?? new VolumeReceiverOptions();
        _options.Validate();
        _volumes = destination;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<VolumeReceiver>();
        StagingPath = _options.StagingPath ?? Path.Combine(destination.Root, ".staging");
    }

    /// <summary>The directory holding staged chunks.</summary>
    public string StagingPath { get; }

    /// <summary>
    /// Removes what a receiver that was killed outright (power loss, SIGKILL) left behind: writable
    /// move subvolumes, which only an unfinished <c>btrfs receive</c> leaves (a completed receive is
    /// read-only). Staged chunks are kept for a resume. Call at host start, before serving. Returns the
    /// names removed.
    /// </summary>
    public async Task<IReadOnlyList<string>> RemoveHalfReceivedAsync(CancellationToken cancellationToken = default)
    {
        var removed = new List<string>();
        foreach (var s in await _volumes.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!s.IsReadOnly && s.ReceivedUuid is null && s.Name.Contains("@move-", StringComparison.Ordinal))
            {
                Log.RemovingHalfReceived(_logger, s.Name);
                await _volumes.DeleteAsync(s.Name, cancellationToken).ConfigureAwait(false);
                removed.Add(s.Name);
            }
        }

        return removed;
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
        await EnsureStagingDirectoryAsync(ct).ConfigureAwait(false);
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

        var gate = _locks.GetOrAdd(begin.SnapshotName, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var list = await _volumes.ListAsync(ct).ConfigureAwait(false);
            var existing = list.FirstOrDefault(s => s.Name == begin.SnapshotName);
            if (existing is not null)
            {
                if (existing.IsReadOnly && existing.ReceivedUuid == begin.SnapshotUuid)
                {
                    await SendReadyAsync(channel, WireStatus.AlreadyReceived, 0, new byte[16], "already received", ct).ConfigureAwait(false);
                    return;
                }

                Log.RemovingHalfReceived(_logger, begin.SnapshotName);
                await _volumes.DeleteAsync(begin.SnapshotName, ct).ConfigureAwait(false);
            }

            if (begin.ParentUuid is { } parent && !list.Any(s => s.IsReadOnly && (s.ReceivedUuid == parent || s.Uuid == parent)))
            {
                await SendReadyAsync(channel, WireStatus.ParentMissing, 0, new byte[16],
                    $"the parent snapshot '{begin.ParentName}' ({parent}) is not on the destination", ct).ConfigureAwait(false);
                return;
            }

            var stagingPath = Path.Combine(StagingPath, begin.SnapshotName + ".stage");
            using var staging = StagingFile.Open(stagingPath, begin.SnapshotUuid, begin.ParentUuid ?? Guid.Empty, begin.ChunkSize);
            if (staging.Discarded is { } discarded)
            {
                Log.StagedChunkDiscarded(_logger, begin.SnapshotName, discarded.Chunk, discarded.Reason, discarded.Bytes);
            }
            if (!_options.StageChunks)
            {
                staging.TruncateTo(0);
            }

            await SendReadyAsync(channel, WireStatus.Ok, staging.Count, WireFormat.PrefixDigest(staging.Hashes, staging.Count), "ready", ct).ConfigureAwait(false);

            using (var resume = await channel.ReceiveAsync(FrameType.ResumeFrom, ct).ConfigureAwait(false))
            {
                var from = resume.Reader().U64("chunkIndex");
                if (from > (ulong)staging.Count)
                {
                    throw new TransferException(TransferFailure.ProtocolViolation, $"ResumeFrom {from} is past the {staging.Count} staged chunks.");
                }

                staging.TruncateTo((int)from);
                if (from > 0)
                {
                    Log.Resuming(_logger, begin.SnapshotName, (long)from);
                }
            }

            var (status, message, received) = await PumpIntoReceiveAsync(channel, staging, begin, ct).ConfigureAwait(false);
            if (status == WireStatus.Ok)
            {
                staging.Delete();
            }
            else if (status != WireStatus.ChunkChecksum)
            {
                // The stream itself is bad (btrfs receive refused it): the staged copy is useless.
                staging.Delete();
            }

            await SendStreamResultAsync(channel, status, received, message, ct).ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Bytes each queue of the receive pipeline may hold (at least two chunks).</summary>
    private const int QueueBytes = 16 << 20;

    private async Task<(WireStatus Status, string Message, Guid Received)> PumpIntoReceiveAsync(
        FrameChannel channel, StagingFile staging, BeginStream begin, CancellationToken ct)
    {
        var receive = _volumes.Runner.StartReceive(_volumes.Root);
        var completed = false;
        try
        {
            var pipeline = new ReceivePipeline(receive.Input, _options.StageChunks ? staging : null,
                Math.Max(2, QueueBytes / begin.ChunkSize), _options.StagingSyncBytes, ct);
            long total = 0;
            var next = 0;
            var failure = (Status: WireStatus.Ok, Message: string.Empty);
            var ended = false;
            PipelineOutcome outcome;
            try
            {
                // The staged (verified) prefix first, from local disk, into the fresh btrfs receive.
                var replay = staging.Count;
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
                        n = await staging.ReadAsync(i, buffer, ct).ConfigureAwait(false);
                    }
                    catch
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                        throw;
                    }

                    total += n;
                    await pipeline.AddAsync(new SharedChunk(buffer, 0, n, null, null), ct).ConfigureAwait(false);
                }

                next = replay;
                var hash = new byte[WireFormat.HashSize];
                while (true)
                {
                    var frame = await channel.TryReceiveAsync(ct).ConfigureAwait(false)
                        ?? throw new TransferException(TransferFailure.PeerDisconnected, $"The sender closed the connection during stream '{begin.SnapshotName}'.");
                    if (frame.Type == FrameType.EndStream)
                    {
                        using (frame)
                        {
                            var r = frame.Reader();
                            var count = r.U64("chunkCount");
                            var bytes = r.U64("totalBytes");
                            if (failure.Status == WireStatus.Ok && (count != (ulong)next || bytes != (ulong)total))
                            {
                                failure = (WireStatus.InvalidRequest, $"stream ended with {count} chunks / {bytes} bytes announced but {next} / {total} received");
                            }
                        }

                        ended = true;
                        break;
                    }

                    if (frame.Type != FrameType.Chunk)
                    {
                        frame.Dispose();
                        throw new TransferException(TransferFailure.ProtocolViolation, $"Expected Chunk or EndStream, got {frame.Type}.");
                    }

                    if (failure.Status != WireStatus.Ok)
                    {
                        frame.Dispose(); // Draining to EndStream after a failure.
                        continue;
                    }

                    var chunk = DecodeChunk(frame, begin.ChunkSize);
                    if (chunk.Index != next)
                    {
                        chunk.Dispose();
                        throw new TransferException(TransferFailure.ProtocolViolation, $"Chunk {chunk.Index} arrived where chunk {next} was expected.");
                    }

                    XxHash128.Hash(chunk.Data.Span, hash);
                    if (!hash.AsSpan().SequenceEqual(chunk.Hash.Span))
                    {
                        Log.BadChunk(_logger, begin.SnapshotName, next);
                        failure = (WireStatus.ChunkChecksum, $"chunk {next} of '{begin.SnapshotName}' failed its checksum; {next} verified chunks stay staged for a resume");
                        chunk.Dispose();
                        continue;
                    }

                    next++;
                    total += chunk.Data.Length;
                    await pipeline.AddAsync(chunk.Share(), ct).ConfigureAwait(false);
                }
            }
            finally
            {
                // An interrupted or rejected stream keeps its staged chunks for a resume: flush them to disk
                // first. A stream that arrived whole needs no flush (its staging file is deleted).
                outcome = await pipeline.CompleteAsync(flush: !ended || failure.Status != WireStatus.Ok).ConfigureAwait(false);
                if (outcome.StagingError is { } stagingError)
                {
                    Log.StagingFailed(_logger, begin.SnapshotName, stagingError);
                }

                if (!ended || failure.Status != WireStatus.Ok)
                {
                    Log.Interrupted(_logger, begin.SnapshotName, outcome.Staged, outcome.Durable);
                }
            }

            if (failure.Status != WireStatus.Ok)
            {
                return (failure.Status, failure.Message, Guid.Empty);
            }

            var writeError = outcome.ReceiveError;
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
                return (WireStatus.ReceiveFailed, writeError is null ? ex.Message : $"{ex.Message} ({writeError})", Guid.Empty);
            }

            var info = await _volumes.FindAsync(begin.SnapshotName, ct).ConfigureAwait(false);
            if (info is null || info.ReceivedUuid != begin.SnapshotUuid || !info.IsReadOnly)
            {
                return (WireStatus.ReceiveFailed, $"btrfs receive finished but '{begin.SnapshotName}' is missing or its received UUID is not {begin.SnapshotUuid}", Guid.Empty);
            }

            completed = true;
            Log.Received(_logger, begin.SnapshotName, total);
            return (WireStatus.Ok, "received", info.Uuid);
        }
        finally
        {
            if (!completed)
            {
                await RemovePartialAsync(receive, begin.SnapshotName).ConfigureAwait(false);
            }
            else
            {
                await receive.DisposeAsync().ConfigureAwait(false);
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

        [LoggerMessage(EventId = 42, Level = LogLevel.Information, Message = "Resuming stream {Name} from chunk {Chunk}")]
        public static partial void Resuming(ILogger logger, string name, long chunk);

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
