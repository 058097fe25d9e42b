using DeCloud.Storage.Moves;
using DeCloud.Storage.Tests.Fixtures;
using DeCloud.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Storage.Tests.Moves;

/// <summary>
/// The default resume on real Btrfs, without disk staging: a dropped connection leaves <c>btrfs receive</c>
/// running for the grace period, and the sender resumes at the next chunk it needs. Nothing is staged,
/// nothing is re-sent that the receive already took, and a receive nobody resumes is cleaned up.
/// </summary>
public sealed class LiveResumeTests(BtrfsHosts hosts)
{
    private const int Chunk = 256 * 1024;
    private const int ChunkFrame = Chunk + 36;
    private const int DataBytes = 16 << 20;
    private static readonly TimeSpan Bound = TimeBox.RealPart;

    private sealed record Setup(BtrfsVolumes Source, BtrfsVolumes Destination, MoveHarness Harness, VolumeMove Sut, string SourcePath, FakeLogger Log, FakeTimeProvider Time);

    private async Task<Setup> CreateSut(VolumeReceiverOptions? receiverOptions = null, int maxAttempts = 3)
    {
        var (src, dst) = await hosts.NewPairAsync();
        var vol = await src.CreateAsync("proj").Within(Bound);
        TreeData.WriteRandomFile(Path.Combine(vol.Path, "disk.raw"), DataBytes, 11);
        TreeData.WriteRandomFile(Path.Combine(vol.Path, "etc", "conf"), 1000, 12);
        var log = new FakeLogger();
        var time = new FakeTimeProvider();
        var harness = new MoveHarness(dst, receiverOptions, new SingleLoggerFactory(log), time);
        var sut = new VolumeMove(src, new VolumeMoveOptions { ChunkSize = Chunk, RetryDelay = TimeSpan.Zero, CatchUpRounds = 0, MaxAttempts = maxAttempts });
        return new Setup(src, dst, harness, sut, vol.Path, log, time);
    }

    private static async Task AssertMovedAndClean(Setup s, SortedDictionary<string, string> expected)
    {
        Assert.Equal(expected, TreeData.Hashes((await s.Destination.GetAsync("proj").Within(Bound)).Path));
        Assert.Equal(["proj"], (await s.Destination.ListAsync().Within(Bound)).Select(v => v.Name));
        Assert.Empty(s.Harness.Receiver.Sessions);
        Assert.False(Directory.Exists(s.Harness.Receiver.StagingPath), "nothing is staged by default");
    }

    [Fact]
    public async Task MoveAsync_ConnectionDropped_ResumesInTheRunningReceiveFromTheLastVerifiedChunk()
    {
        var s = await CreateSut();
        await using var _ = s.Harness;
        // About 24 chunk frames pass; the 25th is cut in the middle.
        s.Harness.WrapClient = (n, stream) => n == 0 ? new FaultStream(stream, breakAfterBytes: 24L * ChunkFrame + (ChunkFrame / 2), tear: true) : stream;
        var expected = TreeData.Hashes(s.SourcePath);

        var result = await s.Sut.MoveAsync("proj", s.Harness.ConnectAsync).Within(Bound);
        await s.Harness.DrainAsync();

        await AssertMovedAndClean(s, expected);
        Assert.Equal(1, result.Reconnects);
        Assert.Equal(0, result.ResumedBytes % Chunk);
        Assert.InRange(result.ResumedBytes, 20L * Chunk, 24L * Chunk);
        // A restart would have sent the whole stream again; the second connection sent only the rest.
        Assert.True(s.Harness.ClientStreams[1].Written < DataBytes - result.ResumedBytes + (1 << 20), $"second connection wrote {s.Harness.ClientStreams[1].Written}");
        var records = s.Log.Collector.GetSnapshot();
        var kept = Assert.Single(records, r => r.Id.Id == 52);
        Assert.Contains($"after {result.ResumedBytes / Chunk} verified chunks ({result.ResumedBytes} bytes) fed to btrfs receive", kept.Message, StringComparison.Ordinal);
        Assert.Single(records, r => r.Id.Id == 53);
        Assert.DoesNotContain(records, r => r.Id.Id is 42 or 54);
    }

    [Fact]
    public async Task MoveAsync_SeveralDropsInARow_EachResumesWhereTheLastStopped()
    {
        var s = await CreateSut(maxAttempts: 6);
        await using var _ = s.Harness;
        // The first three connections each carry about 3 MiB of chunks before they drop.
        s.Harness.WrapClient = (n, stream) => n < 3 ? new FaultStream(stream, breakAfterBytes: (12L * ChunkFrame) + 100) : stream;
        var expected = TreeData.Hashes(s.SourcePath);

        var result = await s.Sut.MoveAsync("proj", s.Harness.ConnectAsync).Within(Bound);
        await s.Harness.DrainAsync();

        await AssertMovedAndClean(s, expected);
        Assert.Equal(3, result.Reconnects);
        // Resumed after about 12, 24 and 36 chunks.
        Assert.InRange(result.ResumedBytes, 60L * Chunk, 72L * Chunk);
        var sent = s.Harness.ClientStreams.Sum(c => c.Written);
        Assert.True(sent < DataBytes + (1 << 20), $"the four connections wrote {sent} bytes for a {DataBytes}-byte volume");
        Assert.Equal(3, s.Log.Collector.GetSnapshot().Count(r => r.Id.Id == 53));
    }

    [Fact]
    public async Task MoveAsync_NoGracePeriod_DroppedStreamStartsOverFromZero()
    {
        var s = await CreateSut(new VolumeReceiverOptions { ResumeGracePeriod = TimeSpan.Zero });
        await using var _ = s.Harness;
        s.Harness.WrapClient = (n, stream) => n == 0 ? new FaultStream(stream, breakAfterBytes: 24L * ChunkFrame) : stream;
        var expected = TreeData.Hashes(s.SourcePath);

        var result = await s.Sut.MoveAsync("proj", s.Harness.ConnectAsync).Within(Bound);
        await s.Harness.DrainAsync();

        await AssertMovedAndClean(s, expected);
        Assert.Equal(1, result.Reconnects);
        Assert.Equal(0, result.ResumedBytes);
        Assert.True(s.Harness.ClientStreams[1].Written >= DataBytes, $"second connection wrote {s.Harness.ClientStreams[1].Written}");
    }

    [Fact]
    public async Task GracePeriodExpires_SenderNeverCameBack_ReceiveStoppedNoPartialSourceIntact()
    {
        var s = await CreateSut(new VolumeReceiverOptions { ResumeGracePeriod = TimeSpan.FromMinutes(10) }, maxAttempts: 2);
        await using var _ = s.Harness;
        s.Harness.WrapClient = (n, stream) => new FaultStream(stream, breakAfterBytes: 24L * ChunkFrame);
        var connections = 0;
        async ValueTask<Stream> ConnectAsync(CancellationToken ct) =>
            connections++ == 0
                ? await s.Harness.ConnectAsync(ct)
                : throw new IOException("the path to the destination is gone"); // not even an Abort gets through
        var expected = TreeData.Hashes(s.SourcePath);

        var ex = await Assert.ThrowsAsync<MoveFailedException>(() => s.Sut.MoveAsync("proj", ConnectAsync).Within(Bound));
        await s.Harness.SessionEndedAsync(0).Within(Bound);

        Assert.Equal(MoveStep.FullSend, ex.Step);
        // The receive is still running, its half-received subvolume in place, waiting for the sender.
        var session = Assert.Single(s.Harness.Receiver.Sessions);
        Assert.Contains(await s.Destination.ListAsync().Within(Bound), v => !v.IsReadOnly && v.Name.Contains("@move-", StringComparison.Ordinal));
        s.Time.Advance(TimeSpan.FromMinutes(9));
        Assert.False(session.IsEnded);

        s.Time.Advance(TimeSpan.FromMinutes(1));
        await session.Ended.Within(Bound);

        Assert.Empty(await s.Destination.ListAsync().Within(Bound));
        Assert.Empty(s.Harness.Receiver.Sessions);
        Assert.Equal(["proj"], (await s.Source.ListAsync().Within(Bound)).Select(v => v.Name));
        Assert.Equal(expected, TreeData.Hashes(s.SourcePath));
        var expired = Assert.Single(s.Log.Collector.GetSnapshot(), r => r.Id.Id == 54);
        Assert.Equal(LogLevel.Warning, expired.Level);
    }

    [Fact]
    public async Task DisposeAsync_ReceiveWaitingForItsSender_StoppedAndNoPartialLeft()
    {
        var s = await CreateSut(maxAttempts: 1);
        var sut = s.Harness.Receiver;
        s.Harness.WrapClient = (n, stream) => new FaultStream(stream, breakAfterBytes: 24L * ChunkFrame);
        var connections = 0;
        async ValueTask<Stream> ConnectAsync(CancellationToken ct) =>
            connections++ == 0 ? await s.Harness.ConnectAsync(ct) : throw new IOException("unreachable");

        await Assert.ThrowsAsync<MoveFailedException>(() => s.Sut.MoveAsync("proj", ConnectAsync).Within(Bound));
        await s.Harness.SessionEndedAsync(0).Within(Bound);
        Assert.Single(sut.Sessions);

        await s.Harness.DisposeAsync().AsTask().Within(Bound);

        Assert.Empty(sut.Sessions);
        Assert.Empty(await s.Destination.ListAsync().Within(Bound));
    }
}
