using System.Buffers;
using System.Threading.Channels;

namespace DeCloud.Storage.Moves;

/// <summary>
/// One chunk's bytes, shared by the two writers of a <see cref="ReceivePipeline"/>; the last
/// <see cref="Release"/> returns the buffer (or disposes the frame that owns it).
/// </summary>
internal sealed class SharedChunk
{
    private readonly byte[] _buffer;
    private readonly int _offset;
    private readonly IDisposable? _owner;
    private int _references = 1;

    /// <param name="buffer">Pooled buffer holding the data (returned to the pool unless <paramref name="owner"/> owns it).</param>
    /// <param name="offset">Where the data starts in <paramref name="buffer"/>.</param>
    /// <param name="length">Data length.</param>
    /// <param name="hash">The chunk's verified XxHash128; null for chunks replayed from the staging file.</param>
    /// <param name="owner">Disposed instead of returning <paramref name="buffer"/> (a received frame).</param>
    public SharedChunk(byte[] buffer, int offset, int length, byte[]? hash, IDisposable? owner)
    {
        _buffer = buffer;
        _offset = offset;
        Length = length;
        Hash = hash;
        _owner = owner;
    }

    public int Length { get; }

    public byte[]? Hash { get; }

    public ReadOnlyMemory<byte> Data => _buffer.AsMemory(_offset, Length);

    public void AddReference() => Interlocked.Increment(ref _references);

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) != 0)
        {
            return;
        }

        if (_owner is not null)
        {
            _owner.Dispose();
        }
        else
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }
    }
}

/// <summary>How a <see cref="ReceivePipeline"/> ended.</summary>
/// <param name="ReceiveError">Why writing to <c>btrfs receive</c> failed (it exited early), or null.</param>
/// <param name="StagingError">Why staging stopped (disk full, I/O error), or null.</param>
/// <param name="Staged">Chunks in the staging file at the end.</param>
/// <param name="Durable">Of those, chunks flushed to disk (all of them after an interruption).</param>
internal readonly record struct PipelineOutcome(string? ReceiveError, string? StagingError, int Staged, int Durable);

/// <summary>
/// The destination's data path. Verified chunks fan out to two writers that run concurrently, each
/// behind its own bounded queue: one feeds <c>btrfs receive</c>'s stdin, the other appends to the
/// staging file and flushes it to disk every <c>syncBytes</c> on a background flush (at most one in
/// flight), so neither the disk flush nor a slow stdin stalls the other side until its queue is full.
/// A full queue makes <see cref="AddAsync"/> wait: back-pressure reaches the network, nothing is
/// buffered without bound. <see cref="CompleteAsync"/> always waits for both writers, so a verified
/// chunk is either staged whole or not at all (a torn last record fails its checksum on the next open).
/// </summary>
internal sealed class ReceivePipeline
{
    private readonly Channel<SharedChunk> _toReceive;
    private readonly Channel<SharedChunk>? _toStage;
    private readonly Task<string?> _receiveWriter;
    private readonly Task<string?> _stageWriter;
    private readonly StagingFile? _staging;
    private readonly long _syncBytes;

    /// <param name="receiveInput">btrfs receive's stdin (or any sink).</param>
    /// <param name="staging">Where network chunks are staged; null when staging is off.</param>
    /// <param name="queueChunks">Capacity of each queue, in chunks.</param>
    /// <param name="syncBytes">Staged bytes between two background flushes to disk.</param>
    /// <param name="cancellationToken">Stops both writers (a cancelled receiver).</param>
    public ReceivePipeline(Stream receiveInput, StagingFile? staging, int queueChunks, long syncBytes, CancellationToken cancellationToken)
    {
        _staging = staging;
        _syncBytes = syncBytes;
        var options = new BoundedChannelOptions(queueChunks) { SingleReader = true, SingleWriter = true };
        _toReceive = Channel.CreateBounded<SharedChunk>(options);
        _receiveWriter = Task.Run(() => WriteReceiveAsync(receiveInput, cancellationToken), CancellationToken.None);
        if (staging is not null)
        {
            _toStage = Channel.CreateBounded<SharedChunk>(options);
            _stageWriter = Task.Run(() => WriteStagingAsync(staging, cancellationToken), CancellationToken.None);
        }
        else
        {
            _stageWriter = Task.FromResult<string?>(null);
        }
    }

    /// <summary>
    /// Queues <paramref name="chunk"/> (taking ownership): to the staging writer when it carries a hash
    /// and staging is on, and to btrfs receive. Waits while either queue is full.
    /// </summary>
    public async ValueTask AddAsync(SharedChunk chunk, CancellationToken cancellationToken)
    {
        try
        {
            if (_toStage is not null && chunk.Hash is not null)
            {
                chunk.AddReference();
                if (!_toStage.Writer.TryWrite(chunk))
                {
                    try
                    {
                        await _toStage.Writer.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
                    }
                    catch
                    {
                        chunk.Release();
                        throw;
                    }
                }
            }

            if (!_toReceive.Writer.TryWrite(chunk))
            {
                await _toReceive.Writer.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (ChannelClosedException)
        {
            // A writer stopped (cancelled): CompleteAsync reports why.
            chunk.Release();
        }
        catch
        {
            chunk.Release();
            throw;
        }
    }

    /// <summary>
    /// Ends both queues and waits for the writers to finish what they hold. With <paramref name="flush"/>
    /// the staging file is flushed to disk at the end (for an interrupted stream, whose staged chunks are
    /// kept); a completed stream's staging file is deleted, so flushing it would only cost disk bandwidth.
    /// </summary>
    public async Task<PipelineOutcome> CompleteAsync(bool flush)
    {
        _toReceive.Writer.TryComplete();
        _toStage?.Writer.TryComplete();
        var receiveError = await Finish(_receiveWriter, _toReceive).ConfigureAwait(false);
        var stagingError = _toStage is null ? null : await Finish(_stageWriter, _toStage).ConfigureAwait(false);
        if (_staging is null)
        {
            return new PipelineOutcome(receiveError, null, 0, 0);
        }

        if (flush && stagingError is null)
        {
            try
            {
                _staging.FlushToDisk();
            }
            catch (IOException ex)
            {
                stagingError = ex.Message;
            }
        }

        return new PipelineOutcome(receiveError, stagingError, _staging.Count, _staging.DurableCount);
    }

    private static async Task<string?> Finish(Task<string?> writer, Channel<SharedChunk> queue)
    {
        string? error;
        try
        {
            error = await writer.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Cancelled (the receiver is stopping): not a failure of the sink, and staged chunks are still flushed.
            error = null;
        }

        // A cancelled writer leaves chunks behind: give their buffers back.
        while (queue.Reader.TryRead(out var left))
        {
            left.Release();
        }

        return error;
    }

    private async Task<string?> WriteReceiveAsync(Stream input, CancellationToken ct)
    {
        string? error = null;
        await foreach (var chunk in _toReceive.Reader.ReadAllAsync(ct).ConfigureAwait(false))
        {
            try
            {
                if (error is null)
                {
                    await input.WriteAsync(chunk.Data, ct).ConfigureAwait(false);
                }
            }
            catch (IOException ex)
            {
                // btrfs receive exited early (a bad stream, quota, disk full): its stderr says why. Keep draining.
                error = ex.Message;
            }
            finally
            {
                chunk.Release();
            }
        }

        return error;
    }

    private async Task<string?> WriteStagingAsync(StagingFile staging, CancellationToken ct)
    {
        string? error = null;
        long sinceSync = 0;
        Task flushing = Task.CompletedTask;
        try
        {
            await foreach (var chunk in _toStage!.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                try
                {
                    if (error is null)
                    {
                        await staging.AppendAsync(chunk.Hash!, chunk.Data, ct).ConfigureAwait(false);
                        sinceSync += chunk.Length;
                        if (sinceSync >= _syncBytes)
                        {
                            // At most one flush in flight: wait for the previous one (back-pressure), then start the next.
                            await flushing.ConfigureAwait(false);
                            sinceSync = 0;
                            flushing = Task.Run(staging.FlushToDisk, CancellationToken.None);
                        }
                    }
                }
                catch (IOException ex)
                {
                    // Staging is only for resuming: a full staging disk must not fail the transfer.
                    error = ex.Message;
                }
                finally
                {
                    chunk.Release();
                }
            }
        }
        finally
        {
            try
            {
                await flushing.ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                error ??= ex.Message;
            }
        }

        return error;
    }
}
