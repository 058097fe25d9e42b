using DeCloud.Storage.Moves;
using DeCloud.Storage.Tests.Fixtures;
using DeCloud.Testing;

namespace DeCloud.Storage.Tests;

public sealed class VolumeMoveTests(BtrfsHosts hosts)
{
    private static readonly TimeSpan Bound = TimeBox.RealPart;

    private sealed record Setup(BtrfsVolumes Source, BtrfsVolumes Destination, MoveHarness Harness, VolumeMove Sut, string SourcePath);

    private async Task<Setup> CreateSut(VolumeMoveOptions? options = null, int dataBytes = 6 << 20)
    {
        var (src, dst) = await hosts.NewPairAsync();
        var vol = await src.CreateAsync("proj").Within(Bound);
        TreeData.WriteRandomFile(Path.Combine(vol.Path, "disk.raw"), dataBytes, 1);
        TreeData.WriteRandomFile(Path.Combine(vol.Path, "etc", "conf"), 1000, 2);
        File.CreateSymbolicLink(Path.Combine(vol.Path, "conf-link"), "etc/conf");
        Directory.CreateDirectory(Path.Combine(vol.Path, "empty-dir"));
        var harness = new MoveHarness(dst);
        var sut = new VolumeMove(src, options ?? new VolumeMoveOptions { RetryDelay = TimeSpan.FromMilliseconds(50) });
        return new Setup(src, dst, harness, sut, vol.Path);
    }

    [Fact]
    public async Task MoveAsync_WritesDuringCatchUpAndBeforeFreeze_DestinationMatchesByteForByte()
    {
        var s = await CreateSut();
        await using var _ = s.Harness;
        SortedDictionary<string, string>? expected = null;
        var steps = new List<MoveStep>();
        var events = new List<MoveProgress>();
        var thawed = false;
        var cutOver = false;
        var hooks = new MoveHooks
        {
            StepStarting = (step, _) =>
            {
                steps.Add(step);
                if (step == MoveStep.CatchUp)
                {
                    TreeData.WriteRandomFile(Path.Combine(s.SourcePath, "during-catch-up.bin"), 3 << 20, 3);
                }

                return ValueTask.CompletedTask;
            },
            Freeze = _ =>
            {
                // The workload's last writes land just before it stops: they must arrive in the final delta.
                TreeData.WriteRandomFile(Path.Combine(s.SourcePath, "before-freeze.bin"), 1 << 20, 4);
                File.Delete(Path.Combine(s.SourcePath, "etc", "conf"));
                expected = TreeData.Hashes(s.SourcePath);
                return ValueTask.CompletedTask;
            },
            Thaw = _ => { thawed = true; return ValueTask.CompletedTask; },
            CutOver = _ => { cutOver = true; return ValueTask.CompletedTask; },
        };

        var result = await s.Sut.MoveAsync("proj", s.Harness.ConnectAsync, hooks, new SyncProgress(events.Add)).Within(Bound);

        var moved = await s.Destination.GetAsync("proj").Within(Bound);
        Assert.Equal(expected, TreeData.Hashes(moved.Path));
        Assert.False(moved.IsReadOnly);
        Assert.Equal(moved.Uuid, result.DestinationUuid);
        Assert.Equal(["proj"], (await s.Destination.ListAsync().Within(Bound)).Select(v => v.Name));
        Assert.Empty(await s.Source.ListAsync().Within(Bound));
        Assert.False(Directory.Exists(s.Harness.Receiver.StagingPath), "nothing is staged by default");
        Assert.True(cutOver);
        Assert.False(thawed);
        Assert.Equal(3, result.Streams);
        Assert.Empty(result.Notes);
        Assert.Equal(0, result.Reconnects);
        Assert.Equal(
            [MoveStep.Snapshot, MoveStep.FullSend, MoveStep.CatchUp, MoveStep.Freeze, MoveStep.FinalSend, MoveStep.Verify, MoveStep.CutOver, MoveStep.CleanSource],
            steps);
        Assert.Contains(events, e => e.Step == MoveStep.FullSend && e.TotalBytes > 0);
        Assert.Equal(MoveStep.Completed, events[^1].Step);
        Assert.True(events[^1].Bytes >= 10 << 20, $"bytes {events[^1].Bytes}");
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task MoveAsync_OwnersModesAndTimes_ArriveIntactAndVerified()
    {
        var s = await CreateSut(new VolumeMoveOptions { CatchUpRounds = 0 });
        await using var _ = s.Harness;
        var file = Path.Combine(s.SourcePath, "etc", "conf");
        (await ProcessRunner.RunAsync("chown", ["-h", "1234:5678", file, Path.Combine(s.SourcePath, "conf-link")]).Within()).EnsureSuccess("chown");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.SetGroup);
        File.SetLastWriteTimeUtc(file, new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc).AddTicks(1234567));
        Directory.SetLastWriteTimeUtc(Path.Combine(s.SourcePath, "etc"), new DateTime(2019, 5, 6, 7, 8, 9, DateTimeKind.Utc));
        var paths = new[] { "etc", "etc/conf", "conf-link", "disk.raw", "empty-dir" };
        var expected = paths.Select(p => EntryAttributes.Of(Path.Combine(s.SourcePath, p))).ToList();

        var result = await s.Sut.MoveAsync("proj", s.Harness.ConnectAsync).Within(Bound);

        var moved = (await s.Destination.GetAsync("proj")).Path;
        Assert.Equal(expected, paths.Select(p => EntryAttributes.Of(Path.Combine(moved, p))));
        Assert.Equal(1234u, expected[1].Uid);
        Assert.Equal(5, result.Files);
    }

    [Fact]
    public async Task MoveAsync_ConnectionDroppedMidStream_ResumesAndResendsFewerBytes()
    {
        var s = await CreateSut(new VolumeMoveOptions { ChunkSize = 256 * 1024, RetryDelay = TimeSpan.Zero, CatchUpRounds = 0 }, dataBytes: 24 << 20);
        await using var _ = s.Harness;
        s.Harness.WrapClient = (n, stream) => n == 0 ? new FaultStream(stream, breakAfterBytes: 14 << 20) : stream;
        var expected = TreeData.Hashes(s.SourcePath);

        var result = await s.Sut.MoveAsync("proj", s.Harness.ConnectAsync).Within(Bound);

        Assert.Equal(expected, TreeData.Hashes((await s.Destination.GetAsync("proj")).Path));
        Assert.True(result.Reconnects >= 1);
        Assert.True(result.ResumedBytes >= 8 << 20, $"resumed {result.ResumedBytes}");
        // The second connection carried the rest of the full stream, not all of it.
        Assert.True(s.Harness.ClientStreams[1].Written < (24 << 20) - (8 << 20), $"second connection wrote {s.Harness.ClientStreams[1].Written}");
        Assert.False(Directory.Exists(s.Harness.Receiver.StagingPath), "nothing is staged by default");
    }

    [Fact]
    public async Task MoveAsync_ChunkCorruptedOnWire_RejectedAndResentFromLastVerifiedChunk()
    {
        var s = await CreateSut(new VolumeMoveOptions { ChunkSize = 256 * 1024, RetryDelay = TimeSpan.Zero, CatchUpRounds = 0 });
        await using var _ = s.Harness;
        s.Harness.WrapClient = (n, stream) => n == 0 ? new FaultStream(stream, corruptLargeWrite: 10) : stream;
        var expected = TreeData.Hashes(s.SourcePath);

        var result = await s.Sut.MoveAsync("proj", s.Harness.ConnectAsync).Within(Bound);

        Assert.Equal(expected, TreeData.Hashes((await s.Destination.GetAsync("proj")).Path));
        Assert.Equal(1, result.Reconnects);
        Assert.Equal(10L * 256 * 1024, result.ResumedBytes);
    }

    [Fact]
    public async Task MoveAsync_ParentGoneOnDestination_FallsBackToFullSendAndSaysSo()
    {
        var s = await CreateSut();
        await using var _ = s.Harness;
        var hooks = new MoveHooks
        {
            StepStarting = async (step, ct) =>
            {
                if (step == MoveStep.CatchUp)
                {
                    foreach (var v in await s.Destination.ListAsync(ct))
                    {
                        await s.Destination.DeleteAsync(v.Name, ct);
                    }
                }
            },
        };
        var expected = TreeData.Hashes(s.SourcePath);

        var result = await s.Sut.MoveAsync("proj", s.Harness.ConnectAsync, hooks).Within(Bound);

        Assert.Equal(expected, TreeData.Hashes((await s.Destination.GetAsync("proj")).Path));
        var note = Assert.Single(result.Notes);
        Assert.Contains("not on the destination", note, StringComparison.Ordinal);
        Assert.Contains("in full", note, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MoveAsync_CutOverHookFails_SourceIntactThawedAndDestinationClean()
    {
        var s = await CreateSut();
        await using var _ = s.Harness;
        var expected = TreeData.Hashes(s.SourcePath);
        var thawed = false;
        var hooks = new MoveHooks
        {
            Thaw = _ => { thawed = true; return ValueTask.CompletedTask; },
            CutOver = _ => throw new InvalidOperationException("project map unavailable"),
        };

        var ex = await Assert.ThrowsAsync<MoveFailedException>(() => s.Sut.MoveAsync("proj", s.Harness.ConnectAsync, hooks).Within(Bound));

        Assert.Equal(MoveStep.CutOver, ex.Step);
        Assert.Contains("project map unavailable", ex.Message, StringComparison.Ordinal);
        Assert.True(thawed);
        Assert.Equal(["proj"], (await s.Source.ListAsync()).Select(v => v.Name));
        Assert.Equal(expected, TreeData.Hashes(s.SourcePath));
        Assert.Empty(await s.Destination.ListAsync());
    }

    [Fact]
    public async Task MoveAsync_ReceiverKilledMidStream_NoPartialSubvolumeAndSourceIntact()
    {
        var s = await CreateSut(new VolumeMoveOptions { MaxAttempts = 1, ChunkSize = 256 * 1024 }, dataBytes: 16 << 20);
        await using var _ = s.Harness;
        s.Harness.WrapServer = (n, stream, kill) => new KillAfterReadStream(stream, 6 << 20, kill);
        var expected = TreeData.Hashes(s.SourcePath);

        var ex = await Assert.ThrowsAsync<MoveFailedException>(() => s.Sut.MoveAsync("proj", s.Harness.ConnectAsync).Within(Bound));
        await s.Harness.DrainAsync();

        Assert.Equal(MoveStep.FullSend, ex.Step);
        Assert.Empty(await s.Destination.ListAsync());
        Assert.Equal(["proj"], (await s.Source.ListAsync()).Select(v => v.Name));
        Assert.Equal(expected, TreeData.Hashes(s.SourcePath));
        Assert.Contains(s.Harness.ServerErrors, e => e is OperationCanceledException);
    }

    [Fact]
    public async Task MoveAsync_PeerAlwaysDisconnects_FailsAfterAttemptsWithTransientCause()
    {
        var s = await CreateSut(new VolumeMoveOptions { MaxAttempts = 2, RetryDelay = TimeSpan.Zero, ChunkSize = 256 * 1024 });
        await using var _ = s.Harness;
        s.Harness.WrapClient = (n, stream) => new FaultStream(stream, breakAfterBytes: 1 << 20);

        var ex = await Assert.ThrowsAsync<MoveFailedException>(() => s.Sut.MoveAsync("proj", s.Harness.ConnectAsync).Within(Bound));
        await s.Harness.DrainAsync();

        var cause = Assert.IsType<TransferException>(ex.InnerException);
        Assert.Equal(TransferFailure.PeerDisconnected, cause.Reason);
        Assert.True(cause.IsTransient);
        Assert.Equal(["proj"], (await s.Source.ListAsync()).Select(v => v.Name));
        Assert.DoesNotContain(await s.Destination.ListAsync(), v => v.ReceivedUuid is null);
    }

    [Fact]
    public async Task MoveAsync_TargetExistsOnDestination_RefusedAndNothingTouched()
    {
        var s = await CreateSut();
        await using var _ = s.Harness;
        await s.Destination.CreateAsync("proj");

        var ex = await Assert.ThrowsAsync<MoveFailedException>(() => s.Sut.MoveAsync("proj", s.Harness.ConnectAsync).Within(Bound));

        Assert.Contains("already exists", ex.Message, StringComparison.Ordinal);
        Assert.Equal(["proj"], (await s.Source.ListAsync()).Select(v => v.Name));
        Assert.Equal(["proj"], (await s.Destination.ListAsync()).Select(v => v.Name));
    }

    [Fact]
    public async Task MoveAsync_UnknownVolume_ThrowsVolumeNotFoundWithoutConnecting()
    {
        var s = await CreateSut();
        await using var _ = s.Harness;

        await Assert.ThrowsAsync<VolumeNotFoundException>(() => s.Sut.MoveAsync("ghost", s.Harness.ConnectAsync).Within(Bound));

        Assert.Empty(s.Harness.ClientStreams);
    }

    [Fact]
    public async Task MoveAsync_Compressed_WireBytesBelowStreamBytes()
    {
        var (src, dst) = await hosts.NewPairAsync();
        var vol = await src.CreateAsync("text");
        await File.WriteAllTextAsync(Path.Combine(vol.Path, "log.txt"), string.Concat(Enumerable.Repeat("the same line of log text\n", 200_000)));
        var expected = TreeData.Hashes(vol.Path);
        await using var harness = new MoveHarness(dst);
        var sut = new VolumeMove(src, new VolumeMoveOptions { Compress = true, CatchUpRounds = 0 });

        var result = await sut.MoveAsync("text", harness.ConnectAsync).Within(Bound);

        Assert.Equal(expected, TreeData.Hashes((await dst.GetAsync("text")).Path));
        Assert.True(result.WireBytes * 4 < result.StreamBytes, $"wire {result.WireBytes} vs stream {result.StreamBytes}");
    }

    private sealed class SyncProgress(Action<MoveProgress> report) : IProgress<MoveProgress>
    {
        public void Report(MoveProgress value) => report(value);
    }
}

public sealed class ReceiverRestartTests(BtrfsHosts hosts)
{
    [Fact]
    public async Task RemoveHalfReceivedAsync_AfterCrash_RemovesOnlyUnfinishedReceives()
    {
        var (_, dst) = await hosts.NewPairAsync();
        await dst.CreateAsync("vol@move-abc-1");      // what a killed btrfs receive leaves: writable, no received UUID
        await dst.CreateAsync("vol");                 // a live volume
        await dst.SnapshotAsync("vol", "vol@move-abc-0"); // read-only: not a half receive
        var sut = new VolumeReceiver(dst);

        var removed = await sut.RemoveHalfReceivedAsync().Within(TimeBox.RealPart);

        Assert.Equal(["vol@move-abc-1"], removed);
        Assert.Equal(["vol", "vol@move-abc-0"], (await dst.ListAsync()).Select(v => v.Name));
    }
}

public sealed class DestinationFullTests(BtrfsHosts hosts)
{
    [Fact]
    public async Task MoveAsync_DestinationWithoutSpace_FailsClearlySourceIntactNoPartial()
    {
        var (src, _) = await hosts.NewPairAsync();
        await using var small = await LoopBtrfs.CreateAsync(256L << 20);
        var dst = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = small.NewRoot("dst") });
        var vol = await src.CreateAsync("big");
        TreeData.WriteRandomFile(Path.Combine(vol.Path, "disk.raw"), 320 << 20, 9);
        await using var harness = new MoveHarness(dst);
        var sut = new VolumeMove(src, new VolumeMoveOptions { MaxAttempts = 1, CatchUpRounds = 0 });

        var ex = await Assert.ThrowsAsync<MoveFailedException>(() => sut.MoveAsync("big", harness.ConnectAsync).Within(TimeBox.RealPart));
        await harness.DrainAsync();

        Assert.Equal(MoveStep.FullSend, ex.Step);
        var cause = Assert.IsType<TransferException>(ex.InnerException);
        Assert.Equal(TransferFailure.DestinationFull, cause.Reason);
        Assert.Contains("No space left", cause.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Empty(await dst.ListAsync());
        Assert.Equal(["big"], (await src.ListAsync()).Select(v => v.Name));
        Assert.Equal(320L << 20, new FileInfo(Path.Combine(vol.Path, "disk.raw")).Length);
    }
}
