using System.Buffers;
using System.IO.Hashing;
using DeCloud.Storage.Moves;
using DeCloud.Testing;

namespace DeCloud.Storage.Tests.Moves;

/// <summary>The fan-out to btrfs receive and the staging file, with fake sinks.</summary>
public sealed class ReceivePipelineTests : IDisposable
{
    private const int ChunkSize = 64 * 1024;
    private readonly string _dir = Directory.CreateTempSubdirectory("dcs7b-pipeline-").FullName;
    private int _released;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private StagingFile CreateStaging() => StagingFile.Open(Path.Combine(_dir, "s.stage"), Guid.NewGuid(), Guid.Empty, ChunkSize);

    private SharedChunk Chunk(int seed)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        new Random(seed).NextBytes(buffer.AsSpan(0, ChunkSize));
        return new SharedChunk(buffer, 0, ChunkSize, XxHash128.Hash(buffer.AsSpan(0, ChunkSize)), new Release(this, buffer));
    }

    private sealed class Release(ReceivePipelineTests owner, byte[] buffer) : IDisposable
    {
        public void Dispose()
        {
            Interlocked.Increment(ref owner._released);
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    [Fact]
    public async Task AddAsync_ReceiveSideStalled_StagingKeepsGoingUntilTheQueueIsFull()
    {
        using var staging = CreateStaging();
        var sink = new GatedStream();
        var sut = new ReceivePipeline(sink, staging, queueChunks: 2, syncBytes: 1 << 20, CancellationToken.None);

        // The receive writer holds chunk 0 (blocked in its write), the queue holds 1 and 2: three adds complete.
        for (var i = 0; i < 3; i++)
        {
            await sut.AddAsync(Chunk(i), CancellationToken.None).AsTask().Within();
        }

        var fourth = sut.AddAsync(Chunk(3), CancellationToken.None).AsTask();
        await sink.FirstWrite.Task.Within();
        // The fourth chunk still reaches the staging file; only the receive queue is full.
        await WaitUntil(() => staging.Count == 4);
        Assert.False(fourth.IsCompleted, "a full receive queue must hold the network back");

        sink.Open.SetResult();
        await fourth.Within();
        var outcome = await sut.CompleteAsync(flush: true).Within();

        Assert.Null(outcome.ReceiveError);
        Assert.Equal(new PipelineOutcome(null, null, 4, 4), outcome);
        Assert.Equal(4L * ChunkSize, sink.Bytes);
        Assert.Equal(4, _released);
    }

    [Fact]
    public async Task CompleteAsync_ReceiveExitedEarly_ReportsItStagesEverythingAndReturnsEveryBuffer()
    {
        using var staging = CreateStaging();
        var sut = new ReceivePipeline(new BrokenStream(), staging, queueChunks: 2, syncBytes: 2 * ChunkSize, CancellationToken.None);

        for (var i = 0; i < 6; i++)
        {
            await sut.AddAsync(Chunk(i), CancellationToken.None).AsTask().Within();
        }

        var outcome = await sut.CompleteAsync(flush: false).Within();

        Assert.Equal("Broken pipe", outcome.ReceiveError);
        Assert.Equal(6, outcome.Staged);
        Assert.Equal(6, outcome.Durable); // flushed in the background every two chunks, the last one awaited
        Assert.Equal(6, _released);
    }

    [Fact]
    public async Task CompleteAsync_Cancelled_ReturnsEveryBufferAndFlushesWhatWasStaged()
    {
        using var staging = CreateStaging();
        using var cts = new CancellationTokenSource();
        var sink = new GatedStream();
        var sut = new ReceivePipeline(sink, staging, queueChunks: 4, syncBytes: 1 << 30, cts.Token);
        for (var i = 0; i < 4; i++)
        {
            await sut.AddAsync(Chunk(i), CancellationToken.None).AsTask().Within();
        }

        await sink.FirstWrite.Task.Within();
        await cts.CancelAsync();
        var outcome = await sut.CompleteAsync(flush: true).Within();

        Assert.Equal(outcome.Staged, outcome.Durable);
        Assert.Equal(4, _released);
    }

    [Fact]
    public async Task AddAsync_ReplayedChunkWithoutHash_GoesToReceiveOnly()
    {
        using var staging = CreateStaging();
        var sink = new GatedStream();
        sink.Open.SetResult();
        var sut = new ReceivePipeline(sink, staging, queueChunks: 2, syncBytes: 1 << 20, CancellationToken.None);
        var buffer = ArrayPool<byte>.Shared.Rent(100);

        await sut.AddAsync(new SharedChunk(buffer, 0, 100, null, null), CancellationToken.None).AsTask().Within();
        var outcome = await sut.CompleteAsync(flush: true).Within();

        Assert.Equal(0, outcome.Staged);
        Assert.Equal(100, sink.Bytes);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(TimeBox.Default);
        while (!condition())
        {
            cts.Token.ThrowIfCancellationRequested();
            await Task.Yield();
        }
    }

    /// <summary>A sink whose writes wait until <see cref="Open"/> is set.</summary>
    private sealed class GatedStream : Stream
    {
        public TaskCompletionSource Open { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource FirstWrite { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long Bytes { get; private set; }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            FirstWrite.TrySetResult();
            await Open.Task.WaitAsync(cancellationToken);
            Bytes += buffer.Length;
        }
    }

    /// <summary>btrfs receive that has exited: every write fails with EPIPE.</summary>
    private sealed class BrokenStream : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new IOException("Broken pipe");
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromException(new IOException("Broken pipe"));
    }
}
