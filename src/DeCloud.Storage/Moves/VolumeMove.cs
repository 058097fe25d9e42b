using System.Buffers;
using System.IO.Compression;
using System.IO.Hashing;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Storage.Moves;

/// <summary>
/// The source side of a move: snapshot and full send, incremental catch-up, the caller's freeze,
/// a final incremental, verification on both hosts (received UUID and checksum manifest), the
/// destination turning the last snapshot into the live volume, the caller's cut-over, and only then
/// deleting the source and its snapshots. Talks to a <see cref="VolumeReceiver"/> over any stream;
/// a dropped connection is redialled and the stream resumes from the last chunk the destination verified.
/// </summary>
public sealed partial class VolumeMove
{
    private readonly BtrfsVolumes _source;
    private readonly VolumeMoveOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    /// <summary>Creates a mover for volumes of <paramref name="source"/>.</summary>
    public VolumeMove(BtrfsVolumes source, VolumeMoveOptions? options = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        _options = options ?? new VolumeMoveOptions();
        _options.Validate();
        _source = source;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<VolumeMove>();
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>
    /// Moves <paramref name="volumeName"/> to the host behind <paramref name="connect"/>, which opens a
    /// new connection to its <see cref="VolumeReceiver"/> (called again after a dropped connection; the
    /// mover disposes what it returns).
    /// </summary>
    /// <exception cref="VolumeNotFoundException">The volume does not exist on the source.</exception>
    /// <exception cref="MoveFailedException">A step failed; the source volume is intact and serving.</exception>
    public async Task<MoveResult> MoveAsync(
        string volumeName,
        Func<CancellationToken, ValueTask<Stream>> connect,
        MoveHooks? hooks = null,
        IProgress<MoveProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        VolumeName.Validate(volumeName, nameof(volumeName));
        ArgumentNullException.ThrowIfNull(connect);
        hooks ??= new MoveHooks();
        var volume = await _source.GetAsync(volumeName, cancellationToken).ConfigureAwait(false);
        var started = _time.GetTimestamp();
        using var activity = StorageTelemetry.ActivitySource.StartActivity("decloud.storage.move");
        activity?.SetTag("decloud.volume", volumeName);
        var run = new Run(volume, Guid.NewGuid().ToString("N")[..12], _options.DestinationName ?? volumeName, connect,
            new ProgressMeter(_time, progress, _options.ProgressInterval));
        Log.Starting(_logger, volumeName, run.MoveId, run.Target);
        var step = MoveStep.Snapshot;
        var frozen = false;
        var destinationUuid = Guid.Empty;
        try
        {
            await StepAsync(run, hooks, step = MoveStep.Snapshot, cancellationToken).ConfigureAwait(false);
            var last = await TakeSnapshotAsync(run, cancellationToken).ConfigureAwait(false);

            await StepAsync(run, hooks, step = MoveStep.FullSend, cancellationToken).ConfigureAwait(false);
            await SendAsync(run, last, null, cancellationToken).ConfigureAwait(false);

            for (var i = 0; i < _options.CatchUpRounds; i++)
            {
                await StepAsync(run, hooks, step = MoveStep.CatchUp, cancellationToken).ConfigureAwait(false);
                var next = await TakeSnapshotAsync(run, cancellationToken).ConfigureAwait(false);
                await SendAsync(run, next, last, cancellationToken).ConfigureAwait(false);
                last = next;
            }

            await StepAsync(run, hooks, step = MoveStep.Freeze, cancellationToken).ConfigureAwait(false);
            frozen = true;
            if (hooks.Freeze is { } freeze)
            {
                await freeze(cancellationToken).ConfigureAwait(false);
            }

            await StepAsync(run, hooks, step = MoveStep.FinalSend, cancellationToken).ConfigureAwait(false);
            var final = await TakeSnapshotAsync(run, cancellationToken).ConfigureAwait(false);
            await SendAsync(run, final, last, cancellationToken).ConfigureAwait(false);

            await StepAsync(run, hooks, step = MoveStep.Verify, cancellationToken).ConfigureAwait(false);
            run.Files = await WithRetryAsync(run, ch => VerifyAsync(ch, final, cancellationToken), cancellationToken).ConfigureAwait(false);

            await StepAsync(run, hooks, step = MoveStep.CutOver, cancellationToken).ConfigureAwait(false);
            destinationUuid = await WithRetryAsync(run, ch => RequestAsync(ch, FrameType.Finalize, new WireWriter().Str(final.Name), cancellationToken), cancellationToken).ConfigureAwait(false);
            if (hooks.CutOver is { } cutOver)
            {
                await cutOver(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            await FailAsync(run, hooks, frozen, ex).ConfigureAwait(false);
            Record(started, "failure");
            if (ex is OperationCanceledException)
            {
                throw;
            }

            Log.Failed(_logger, volumeName, step, ex.Message);
            throw ex as MoveFailedException ?? new MoveFailedException(volumeName, step, ex.Message, ex);
        }

        // Past the cut-over the destination is authoritative: cleanup problems become notes, not failures.
        await StepAsync(run, hooks, MoveStep.CleanSource, CancellationToken.None).ConfigureAwait(false);
        await CleanAfterCutOverAsync(run).ConfigureAwait(false);
        run.Meter.SetStep(MoveStep.Completed);
        var elapsed = _time.GetElapsedTime(started);
        Record(started, "success");
        Log.Completed(_logger, volumeName, run.Meter.TotalBytes, elapsed.TotalSeconds);
        return new MoveResult(volumeName, run.Target, destinationUuid, run.Meter.TotalBytes, run.WireBytes, run.ResumedBytes,
            run.Streams, run.Reconnects, run.Files, elapsed, run.Notes);
    }

    private void Record(long started, string outcome) =>
        StorageTelemetry.MoveDuration.Record(_time.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("outcome", outcome));

    private static async Task StepAsync(Run run, MoveHooks hooks, MoveStep step, CancellationToken ct)
    {
        run.Meter.SetStep(step);
        if (hooks.StepStarting is { } hook)
        {
            await hook(step, ct).ConfigureAwait(false);
        }
    }

    private async Task<SubvolumeInfo> TakeSnapshotAsync(Run run, CancellationToken ct)
    {
        var name = run.Volume.Name + VolumeReceiver.MoveMarker(run.MoveId) + run.Snapshots.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var snapshot = await _source.SnapshotAsync(run.Volume.Name, name, readOnly: true, ct).ConfigureAwait(false);
        run.Snapshots.Add(snapshot);
        return snapshot;
    }

    private Task SendAsync(Run run, SubvolumeInfo snapshot, SubvolumeInfo? parent, CancellationToken ct) =>
        WithRetryAsync(run, async ch =>
        {
            var useParent = parent;
            if (useParent is not null && await _source.FindAsync(useParent.Name, ct).ConfigureAwait(false) is null)
            {
                Note(run, $"parent snapshot '{useParent.Name}' is gone on the source; sent '{snapshot.Name}' in full");
                useParent = null;
            }

            var outcome = await SendStreamAsync(run, ch, snapshot, useParent, ct).ConfigureAwait(false);
            if (outcome is { } parentMissing)
            {
                Note(run, $"{parentMissing}; sent '{snapshot.Name}' in full instead of incrementally");
                outcome = await SendStreamAsync(run, ch, snapshot, null, ct).ConfigureAwait(false);
                if (outcome is not null)
                {
                    throw new TransferException(TransferFailure.Rejected, $"The destination refused a full send of '{snapshot.Name}': {outcome}");
                }
            }

            return true;
        }, ct);

    private void Note(Run run, string note)
    {
        run.Notes.Add(note);
        Log.Note(_logger, run.Volume.Name, note);
    }

    /// <summary>Runs <paramref name="action"/> on a connection, redialling after a transient failure (the action must be idempotent).</summary>
    private async Task<T> WithRetryAsync<T>(Run run, Func<FrameChannel, Task<T>> action, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var channel = await ConnectAsync(run, ct).ConfigureAwait(false);
                return await action(channel).ConfigureAwait(false);
            }
            catch (TransferException ex) when (ex.IsTransient && attempt < _options.MaxAttempts)
            {
                Log.Retrying(_logger, run.Volume.Name, attempt, ex.Message);
                await run.DropAsync().ConfigureAwait(false);
                await Task.Delay(_options.RetryDelay, _time, ct).ConfigureAwait(false);
            }
            catch
            {
                await run.DropAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    private static async Task<FrameChannel> ConnectAsync(Run run, CancellationToken ct)
    {
        if (run.Channel is { } existing)
        {
            return existing;
        }

        Stream stream;
        try
        {
            stream = await run.Connect(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            throw new TransferException(TransferFailure.PeerDisconnected, $"Could not connect to the destination: {ex.Message}", ex);
        }

        if (run.Connections++ > 0)
        {
            run.Reconnects++;
        }

        var channel = new FrameChannel(stream, WireFormat.ChunkHeaderSize + WireFormat.MaxChunkSize);
        run.Channel = channel;
        await channel.SendAsync(FrameType.Hello, new WireWriter().U32(WireFormat.Magic).U16(WireFormat.Version).Str(run.MoveId).Str(run.Target), ct).ConfigureAwait(false);
        using var reply = await channel.ReceiveAsync(FrameType.HelloReply, ct).ConfigureAwait(false);
        var r = reply.Reader();
        var status = (WireStatus)r.U8("status");
        var message = r.Str("message");
        if (status != WireStatus.Ok)
        {
            throw new TransferException(TransferFailure.Rejected, $"The destination refused the move: {message}.");
        }

        return channel;
    }

    /// <summary>Sends one stream. Returns null when applied, or the reason when the destination lacks the parent.</summary>
    private async Task<string?> SendStreamAsync(Run run, FrameChannel channel, SubvolumeInfo snapshot, SubvolumeInfo? parent, CancellationToken ct)
    {
        var chunkSize = _options.ChunkSize;
        await channel.SendAsync(FrameType.BeginStream, new BeginStream(snapshot.Name, snapshot.Uuid, parent?.Uuid, parent?.Name ?? string.Empty, chunkSize).Write(), ct).ConfigureAwait(false);
        long staged;
        byte[] digest;
        using (var ready = await channel.ReceiveAsync(FrameType.StreamReady, ct).ConfigureAwait(false))
        {
            var r = ready.Reader();
            var status = (WireStatus)r.U8("status");
            staged = (long)r.U64("stagedChunks");
            digest = r.Bytes(WireFormat.HashSize, "prefixDigest");
            var message = r.Str("message");
            switch (status)
            {
                case WireStatus.AlreadyReceived:
                    return null;
                case WireStatus.ParentMissing:
                    return message;
                case WireStatus.Ok:
                    break;
                default:
                    throw new TransferException(FrameChannel.Map(status), $"The destination refused stream '{snapshot.Name}': {message}.");
            }
        }

        run.Meter.BeginStream(parent is null ? EstimateSize(snapshot.Path) : null);
        var send = _source.Runner.StartSend(snapshot.Path, parent?.Path);
        try
        {
            long resumeFrom = 0;
            long prefixBytes = 0;
            if (staged > 0)
            {
                var (matches, bytes) = await MatchStagedPrefixAsync(send.Output, staged, digest, chunkSize, ct).ConfigureAwait(false);
                if (matches)
                {
                    resumeFrom = staged;
                    prefixBytes = bytes;
                    run.ResumedBytes += bytes;
                    run.Meter.Add(bytes);
                    Log.Resuming(_logger, snapshot.Name, staged, bytes);
                }
                else
                {
                    // The destination staged something else: restart the send from its first byte.
                    await send.DisposeAsync().ConfigureAwait(false);
                    send = _source.Runner.StartSend(snapshot.Path, parent?.Path);
                }
            }

            // Past zero, our own digest of the prefix we skip (equal to the destination's, just checked): the
            // destination refuses a resume whose bytes are not those it already has.
            var resume = new WireWriter().U64((ulong)resumeFrom);
            if (resumeFrom > 0)
            {
                resume.Bytes(digest);
            }

            await channel.SendAsync(FrameType.ResumeFrom, resume, ct).ConfigureAwait(false);
            var (count, total) = await PumpChunksAsync(run, channel, send.Output, resumeFrom, chunkSize, ct).ConfigureAwait(false);
            await send.WaitForSuccessAsync(ct).ConfigureAwait(false);
            await channel.SendAsync(FrameType.EndStream, new WireWriter().U64((ulong)count).U64((ulong)(prefixBytes + total)), ct).ConfigureAwait(false);
            await channel.FlushAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            await send.DisposeAsync().ConfigureAwait(false);
        }

        using var result = await channel.ReceiveAsync(FrameType.StreamResult, ct).ConfigureAwait(false);
        var rr = result.Reader();
        var resultStatus = (WireStatus)rr.U8("status");
        var received = rr.Guid("receivedUuid");
        var resultMessage = rr.Str("message");
        if (resultStatus != WireStatus.Ok)
        {
            throw new TransferException(FrameChannel.Map(resultStatus), $"The destination could not apply '{snapshot.Name}': {resultMessage}");
        }

        run.Streams++;
        Log.StreamApplied(_logger, snapshot.Name, received);
        return null;
    }

    private static async Task<(bool Matches, long Bytes)> MatchStagedPrefixAsync(Stream output, long staged, byte[] digest, int chunkSize, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(chunkSize);
        try
        {
            var hashes = new List<byte[]>();
            long bytes = 0;
            for (long i = 0; i < staged; i++)
            {
                var n = await output.ReadAtLeastAsync(buffer.AsMemory(0, chunkSize), chunkSize, throwOnEndOfStream: false, ct).ConfigureAwait(false);
                if (n == 0)
                {
                    return (false, 0);
                }

                hashes.Add(XxHash128.Hash(buffer.AsSpan(0, n)));
                bytes += n;
            }

            return (WireFormat.PrefixDigest(hashes, hashes.Count).AsSpan().SequenceEqual(digest), bytes);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    internal readonly record struct OutFrame(byte[] Buffer, int Length, int Raw);

    /// <summary>
    /// Reads the send stream in chunks into pooled buffers laid out as whole frames (header space
    /// reserved up front), hashes (and maybe compresses) them on one task while another writes them
    /// to the network, so <c>btrfs send</c>, hashing and the socket run concurrently.
    /// </summary>
    private async Task<(long Count, long Total)> PumpChunksAsync(Run run, FrameChannel channel, Stream output, long firstIndex, int chunkSize, CancellationToken ct)
    {
        var frames = Channel.CreateBounded<OutFrame>(new BoundedChannelOptions(4) { SingleReader = true, SingleWriter = true });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var compress = _options.Compress;
        var producer = Task.Run(async () =>
        {
            var index = firstIndex;
            long total = 0;
            try
            {
                while (true)
                {
                    var buffer = ArrayPool<byte>.Shared.Rent(WireFormat.ChunkDataOffset + chunkSize);
                    var n = await output.ReadAtLeastAsync(buffer.AsMemory(WireFormat.ChunkDataOffset, chunkSize), chunkSize, throwOnEndOfStream: false, cts.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                        break;
                    }

                    var frame = BuildChunkFrame(buffer, index, n, compress);
                    await frames.Writer.WriteAsync(frame, cts.Token).ConfigureAwait(false);
                    index++;
                    total += n;
                }
            }
            finally
            {
                frames.Writer.TryComplete();
            }

            return (index, total);
        }, cts.Token);

        try
        {
            await foreach (var frame in frames.Reader.ReadAllAsync(cts.Token).ConfigureAwait(false))
            {
                try
                {
                    await channel.WriteRawAsync(frame.Buffer.AsMemory(0, frame.Length), cts.Token).ConfigureAwait(false);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(frame.Buffer);
                }

                var wire = frame.Length - WireFormat.ChunkDataOffset;
                run.WireBytes += wire;
                run.Meter.Add(frame.Raw);
                StorageTelemetry.MoveBytes.Add(frame.Raw);
                StorageTelemetry.MoveWireBytes.Add(wire);
            }
        }
        catch
        {
            await cts.CancelAsync().ConfigureAwait(false);
            try
            {
                await producer.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            throw;
        }

        var (next, bytes) = await producer.ConfigureAwait(false);
        return (next, bytes);
    }

    internal static OutFrame BuildChunkFrame(byte[] buffer, long index, int raw, bool compress)
    {
        var data = buffer.AsSpan(WireFormat.ChunkDataOffset, raw);
        if (compress)
        {
            var packed = ArrayPool<byte>.Shared.Rent(WireFormat.ChunkDataOffset + raw);
            if (BrotliEncoder.TryCompress(data, packed.AsSpan(WireFormat.ChunkDataOffset, raw - 1), out var written, 1, 22) && written < raw)
            {
                WriteChunkHeader(packed, index, raw, data, WireFormat.FlagBrotli, written);
                ArrayPool<byte>.Shared.Return(buffer);
                return new OutFrame(packed, WireFormat.ChunkDataOffset + written, raw);
            }

            ArrayPool<byte>.Shared.Return(packed);
        }

        WriteChunkHeader(buffer, index, raw, data, 0, raw);
        return new OutFrame(buffer, WireFormat.ChunkDataOffset + raw, raw);
    }

    private static void WriteChunkHeader(byte[] frame, long index, int raw, ReadOnlySpan<byte> rawData, byte flags, int dataLength)
    {
        WireFormat.WriteHeader(frame, FrameType.Chunk, flags, WireFormat.ChunkHeaderSize + dataLength);
        var h = frame.AsSpan(WireFormat.HeaderSize);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(h, (ulong)index);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(h[8..], (uint)raw);
        XxHash128.Hash(rawData, h.Slice(12, WireFormat.HashSize));
    }

    private static long? EstimateSize(string path)
    {
        try
        {
            long total = 0;
            foreach (var f in new DirectoryInfo(path).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
            {
                total += f.Length;
            }

            return total;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static async Task<long> VerifyAsync(FrameChannel channel, SubvolumeInfo snapshot, CancellationToken ct)
    {
        await channel.SendAsync(FrameType.Verify, new WireWriter().Str(snapshot.Name), ct).ConfigureAwait(false);
        await channel.FlushAsync(ct).ConfigureAwait(false);
        var local = await VolumeManifest.ComputeAsync(snapshot.Path, ct).ConfigureAwait(false);
        using var reply = await channel.ReceiveAsync(FrameType.VerifyReply, ct).ConfigureAwait(false);
        var r = reply.Reader();
        var status = (WireStatus)r.U8("status");
        var received = r.Guid("receivedUuid");
        var remote = new VolumeManifest(r.Bytes(WireFormat.HashSize, "digest"), (long)r.U64("entries"), (long)r.U64("bytes"));
        var message = r.Str("message");
        if (status != WireStatus.Ok)
        {
            throw new StorageException($"The destination could not verify '{snapshot.Name}': {message}.");
        }

        if (received != snapshot.Uuid)
        {
            throw new StorageException($"The destination's '{snapshot.Name}' was received from {received}, not from the source snapshot {snapshot.Uuid}.");
        }

        if (!local.Matches(remote))
        {
            throw new StorageException($"The checksum manifests differ: source {local}, destination {remote}.");
        }

        return local.Entries;
    }

    private static async Task<Guid> RequestAsync(FrameChannel channel, FrameType type, WireWriter payload, CancellationToken ct)
    {
        await channel.SendAsync(type, payload, ct).ConfigureAwait(false);
        await channel.FlushAsync(ct).ConfigureAwait(false);
        using var reply = await channel.ReceiveAsync(FrameType.Reply, ct).ConfigureAwait(false);
        var r = reply.Reader();
        var status = (WireStatus)r.U8("status");
        var message = r.Str("message");
        var uuid = r.Guid("uuid");
        if (status != WireStatus.Ok)
        {
            throw new TransferException(FrameChannel.Map(status), $"The destination refused {type}: {message}.");
        }

        return uuid;
    }

    private async Task FailAsync(Run run, MoveHooks hooks, bool frozen, Exception cause)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2), _time);
        // Tell the destination to drop what it received (one fresh attempt if the connection is gone).
        try
        {
            var channel = await ConnectAsync(run, cts.Token).ConfigureAwait(false);
            await RequestAsync(channel, FrameType.Abort, new WireWriter().Str(cause.Message), cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StorageException or OperationCanceledException or IOException or SocketException)
        {
            Log.CleanupProblem(_logger, run.Volume.Name, "destination abort", ex.Message);
        }

        await run.DropAsync().ConfigureAwait(false);
        if (frozen && hooks.Thaw is { } thaw)
        {
            try
            {
                await thaw(cts.Token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.CleanupProblem(_logger, run.Volume.Name, "thaw", ex.Message);
            }
        }

        await DeleteSnapshotsAsync(run, cts.Token).ConfigureAwait(false);
    }

    private async Task DeleteSnapshotsAsync(Run run, CancellationToken ct)
    {
        foreach (var s in run.Snapshots)
        {
            try
            {
                if (await _source.FindAsync(s.Name, ct).ConfigureAwait(false) is not null)
                {
                    await _source.DeleteAsync(s.Name, ct).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is StorageException or OperationCanceledException)
            {
                Log.CleanupProblem(_logger, run.Volume.Name, "snapshot " + s.Name, ex.Message);
                run.Notes.Add($"could not delete source snapshot '{s.Name}': {ex.Message}");
            }
        }
    }

    private async Task CleanAfterCutOverAsync(Run run)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5), _time);
        try
        {
            await WithRetryAsync(run, ch => RequestAsync(ch, FrameType.Complete, new WireWriter(), cts.Token), cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StorageException or OperationCanceledException)
        {
            Note(run, $"the destination could not remove the move's received snapshots: {ex.Message}");
        }

        await run.DropAsync().ConfigureAwait(false);
        try
        {
            await _source.DeleteAsync(run.Volume.Name, cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StorageException or OperationCanceledException)
        {
            Note(run, $"could not delete the source volume '{run.Volume.Name}' after cut-over: {ex.Message}");
        }

        await DeleteSnapshotsAsync(run, cts.Token).ConfigureAwait(false);
    }

    private sealed class Run(SubvolumeInfo volume, string moveId, string target, Func<CancellationToken, ValueTask<Stream>> connect, ProgressMeter meter)
    {
        public SubvolumeInfo Volume => volume;

        public string MoveId => moveId;

        public string Target => target;

        public Func<CancellationToken, ValueTask<Stream>> Connect => connect;

        public ProgressMeter Meter => meter;

        public FrameChannel? Channel { get; set; }

        public List<SubvolumeInfo> Snapshots { get; } = [];

        public List<string> Notes { get; } = [];

        public int Connections { get; set; }

        public int Reconnects { get; set; }

        public int Streams { get; set; }

        public long WireBytes { get; set; }

        public long ResumedBytes { get; set; }

        public long Files { get; set; }

        public async Task DropAsync()
        {
            if (Channel is { } c)
            {
                Channel = null;
                await c.Stream.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Moving {Volume} (move {MoveId}) to {Target}")]
        public static partial void Starting(ILogger logger, string volume, string moveId, string target);

        [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Moved {Volume}: {Bytes} stream bytes in {Seconds:F1} s")]
        public static partial void Completed(ILogger logger, string volume, long bytes, double seconds);

        [LoggerMessage(EventId = 22, Level = LogLevel.Error, Message = "Moving {Volume} failed at {Step}: {Message}; the source is intact")]
        public static partial void Failed(ILogger logger, string volume, MoveStep step, string message);

        [LoggerMessage(EventId = 23, Level = LogLevel.Warning, Message = "Move of {Volume}: attempt {Attempt} failed ({Message}); reconnecting")]
        public static partial void Retrying(ILogger logger, string volume, int attempt, string message);

        [LoggerMessage(EventId = 24, Level = LogLevel.Information, Message = "Resuming {Snapshot} after the {Chunks} verified chunks the destination holds ({Bytes} bytes not re-sent)")]
        public static partial void Resuming(ILogger logger, string snapshot, long chunks, long bytes);

        [LoggerMessage(EventId = 25, Level = LogLevel.Information, Message = "Destination applied {Snapshot} as {Uuid}")]
        public static partial void StreamApplied(ILogger logger, string snapshot, Guid uuid);

        [LoggerMessage(EventId = 26, Level = LogLevel.Warning, Message = "Move of {Volume}: {Note}")]
        public static partial void Note(ILogger logger, string volume, string note);

        [LoggerMessage(EventId = 27, Level = LogLevel.Warning, Message = "Move of {Volume}: cleanup of {What} failed: {Message}")]
        public static partial void CleanupProblem(ILogger logger, string volume, string what, string message);
    }
}
