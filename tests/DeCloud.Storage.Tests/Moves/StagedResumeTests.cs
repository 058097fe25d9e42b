using DeCloud.Storage.Moves;
using DeCloud.Storage.Tests.Fixtures;
using DeCloud.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace DeCloud.Storage.Tests.Moves;

/// <summary>
/// Durable staging (<see cref="VolumeReceiverOptions.StageChunks"/>) on real Btrfs: the destination
/// process restarts after a connection is lost at different points of a stream (so the live receive is
/// gone and only the staging file remains), a restarted receiver is stopped again while it replays its
/// staged prefix, and a staged file is damaged between two attempts. Every case must end with the data
/// byte for byte on the destination, fewer bytes re-sent than a restart from zero, and nothing half
/// received left behind.
/// </summary>
public sealed class StagedResumeTests(BtrfsHosts hosts)
{
    private const int Chunk = 256 * 1024;
    private const int ChunkFrame = Chunk + 36;
    private const int DataBytes = 16 << 20;
    private static readonly TimeSpan Bound = TimeBox.RealPart;

    private sealed record Setup(BtrfsVolumes Source, BtrfsVolumes Destination, MoveHarness Harness, VolumeMove Sut, string SourcePath, FakeLogger Log);

    private async Task<Setup> CreateSut()
    {
        var (src, dst) = await hosts.NewPairAsync();
        var vol = await src.CreateAsync("proj").Within(Bound);
        TreeData.WriteRandomFile(Path.Combine(vol.Path, "disk.raw"), DataBytes, 7);
        TreeData.WriteRandomFile(Path.Combine(vol.Path, "etc", "conf"), 1000, 8);
        var log = new FakeLogger();
        var harness = new MoveHarness(dst, new VolumeReceiverOptions { StageChunks = true, StagingSyncBytes = 1 << 20 }, new SingleLoggerFactory(log));
        var sut = new VolumeMove(src, new VolumeMoveOptions { ChunkSize = Chunk, RetryDelay = TimeSpan.Zero, CatchUpRounds = 0 });
        return new Setup(src, dst, harness, sut, vol.Path, log);
    }

    private static async Task AssertMovedAndClean(Setup s, SortedDictionary<string, string> expected)
    {
        Assert.Equal(expected, TreeData.Hashes((await s.Destination.GetAsync("proj").Within(Bound)).Path));
        Assert.Equal(["proj"], (await s.Destination.ListAsync().Within(Bound)).Select(v => v.Name));
        Assert.Empty(Directory.GetFiles(s.Harness.Receiver.StagingPath));
    }

    /// <summary>Connects; before the connection numbered <paramref name="restartBefore"/>, waits for the previous one to end and restarts the receiver.</summary>
    private static Func<CancellationToken, ValueTask<Stream>> ConnectRestartingBefore(Setup s, int restartBefore, Func<Task>? afterRestart = null)
    {
        var connections = 0;
        return async ct =>
        {
            if (connections++ == restartBefore)
            {
                await s.Harness.SessionEndedAsync(restartBefore - 1).Within(Bound);
                await s.Harness.RestartReceiverAsync().Within(Bound);
                if (afterRestart is not null)
                {
                    await afterRestart();
                }
            }

            return await s.Harness.ConnectAsync(ct);
        };
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task MoveAsync_ConnectionLostMidChunkOrBetweenChunksThenReceiverRestarts_ResumesAfterTheWholeChunksReceived(bool midChunk)
    {
        var s = await CreateSut();
        await using var _ = s.Harness;
        // About 24 chunk frames pass; the 25th is cut in the middle (midChunk) or not sent at all.
        s.Harness.WrapClient = (n, stream) => n == 0 ? new FaultStream(stream, breakAfterBytes: 24L * ChunkFrame + (ChunkFrame / 2), tear: midChunk) : stream;
        var expected = TreeData.Hashes(s.SourcePath);

        var result = await s.Sut.MoveAsync("proj", ConnectRestartingBefore(s, 1)).Within(Bound);
        await s.Harness.DrainAsync();

        await AssertMovedAndClean(s, expected);
        Assert.Equal(1, result.Reconnects);
        Assert.Equal(0, result.ResumedBytes % Chunk);
        Assert.InRange(result.ResumedBytes, 23L * Chunk, 24L * Chunk);
        Assert.True(s.Harness.ClientStreams[1].Written < DataBytes - result.ResumedBytes + (1 << 20), $"second connection wrote {s.Harness.ClientStreams[1].Written}");
        var cause = Assert.IsType<TransferException>(Assert.Single(s.Harness.ServerErrors));
        Assert.Equal(midChunk ? TransferFailure.Truncated : TransferFailure.PeerDisconnected, cause.Reason);
        // The stopping receiver flushed every verified chunk of the interrupted stream before it let go.
        Assert.Contains(s.Log.Collector.GetSnapshot(), r => r.Id.Id == 50 && r.Message.Contains($"{result.ResumedBytes / Chunk} verified chunks staged for a resume ({result.ResumedBytes / Chunk} flushed to disk)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MoveAsync_ReceiverStoppedDuringReplay_NoPartialLeftAndNextAttemptReplaysAgain()
    {
        var s = await CreateSut();
        await using var _ = s.Harness;
        s.Harness.WrapClient = (n, stream) => n == 0 ? new FaultStream(stream, breakAfterBytes: 24L * ChunkFrame) : stream;
        CancellationTokenSource? secondSession = null;
        s.Harness.WrapServer = (n, stream, kill) =>
        {
            if (n == 1)
            {
                secondSession = kill;
            }

            return stream;
        };
        var replays = 0;
        var stoppedDuringReplay = false;
        var replayHook = async ValueTask (string _, int index, CancellationToken _) =>
        {
            if (index == 10 && replays++ == 0)
            {
                // The receiver host stops (a restart, a cancelled server) halfway through the replay.
                stoppedDuringReplay = true;
                await secondSession!.CancelAsync();
            }
        };

        var expected = TreeData.Hashes(s.SourcePath);

        var result = await s.Sut.MoveAsync("proj", ConnectRestartingBefore(s, 1, () =>
        {
            s.Harness.Receiver.ReplayHook = replayHook;
            return Task.CompletedTask;
        })).Within(Bound);
        await s.Harness.DrainAsync();

        Assert.True(stoppedDuringReplay);
        await AssertMovedAndClean(s, expected);
        Assert.Equal(2, result.Reconnects);
        // Both later attempts resumed after the same staged prefix: the stopped replay lost nothing.
        var staged = result.ResumedBytes / 2;
        Assert.InRange(staged, 23L * Chunk, 24L * Chunk);
        Assert.True(s.Harness.ClientStreams[2].Written < DataBytes - staged + (1 << 20), $"third connection wrote {s.Harness.ClientStreams[2].Written}");
        Assert.Contains(s.Harness.ServerErrors, e => e is OperationCanceledException);
    }

    [Fact]
    public async Task MoveAsync_StagedChunkCorruptedBeforeResume_RefetchesFromThatChunkAndLogsWhy()
    {
        var s = await CreateSut();
        await using var _ = s.Harness;
        s.Harness.WrapClient = (n, stream) => n == 0 ? new FaultStream(stream, breakAfterBytes: 24L * ChunkFrame) : stream;
        // Between the two attempts the destination restarts and a byte of staged chunk 10 rots on its disk.
        var connect = ConnectRestartingBefore(s, 1, async () =>
        {
            var file = Assert.Single(Directory.GetFiles(s.Harness.Receiver.StagingPath, "*.stage"));
            await using var f = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
            f.Position = StagingFile.Block + (10 * StagingFile.RecordLength(Chunk)) + StagingFile.Block + 1000;
            var b = f.ReadByte();
            f.Position -= 1;
            f.WriteByte((byte)(b ^ 0x40));
        });
        var expected = TreeData.Hashes(s.SourcePath);

        var result = await s.Sut.MoveAsync("proj", connect).Within(Bound);
        await s.Harness.DrainAsync();

        await AssertMovedAndClean(s, expected);
        Assert.Equal(1, result.Reconnects);
        Assert.Equal(10L * Chunk, result.ResumedBytes);
        var discard = Assert.Single(s.Log.Collector.GetSnapshot(), r => r.Id.Id == 51);
        Assert.Equal(LogLevel.Warning, discard.Level);
        Assert.Contains("Staged chunk 10 of proj@move-", discard.Message, StringComparison.Ordinal);
        Assert.Contains("its data fails its checksum", discard.Message, StringComparison.Ordinal);
        Assert.Contains("will be fetched again", discard.Message, StringComparison.Ordinal);
    }
}
