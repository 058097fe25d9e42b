using DeCloud.Storage.Backups;
using DeCloud.Storage.Tests.Fixtures;
using DeCloud.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Storage.Tests.Backups;

public sealed class VolumeBackupsTests(BtrfsHosts hosts)
{
    private static readonly TimeSpan Bound = TimeBox.RealPart;

    private async Task<(BtrfsVolumes Src, BtrfsVolumes Dst, VolumeBackups Sut, FakeTimeProvider Time, string Path)> CreateSut(string sourcePolicy = "latest:2", string targetPolicy = "3d 2w latest:1")
    {
        var (src, dst) = await hosts.NewPairAsync();
        var vol = await src.CreateAsync("app");
        TreeData.WriteRandomFile(Path.Combine(vol.Path, "data.bin"), 2 << 20, 7);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 5, 12, 0, 0, TimeSpan.Zero));
        var sut = new VolumeBackups(src, dst, new BackupOptions
        {
            ProjectId = "p1", HostId = "h1", SourceRetention = sourcePolicy, TargetRetention = targetPolicy,
        }, timeProvider: time);
        return (src, dst, sut, time, vol.Path);
    }

    [Fact]
    public async Task BackupAsync_TwiceADayForThreeWeeks_TargetPrunedToPolicyAndIncrementalsArrive()
    {
        var s = await CreateSut();
        for (var round = 0; round < 42; round++)
        {
            File.AppendAllText(Path.Combine(s.Path, "log.txt"), $"round {round}\n");
            await s.Sut.BackupAsync("app").Within(Bound);
            s.Time.Advance(TimeSpan.FromHours(12));
        }

        var target = await s.Sut.ListAsync("app", BackupLocation.Target).Within(Bound);
        var source = await s.Sut.ListAsync("app", BackupLocation.Source).Within(Bound);
        var now = s.Time.GetUtcNow() - TimeSpan.FromHours(12);
        var expected = RetentionPolicy.Parse("3d 2w latest:1");
        Assert.Equal(2, source.Count);
        Assert.InRange(target.Count, 3, 3 + 2 + 1);
        Assert.Equal(now, target[^1].Timestamp);
        Assert.All(target, b => Assert.Equal(("p1", "h1"), (b.ProjectId, b.HostId)));
        Assert.All(expected.Apply(target.Select(t => t.Timestamp).ToList(), now), Assert.True);
        var newest = await s.Dst.GetAsync(target[^1].Name);
        Assert.Contains("round 41", await File.ReadAllTextAsync(Path.Combine(newest.Path, "log.txt")));
        Assert.Equal(TreeData.Hashes(s.Path), TreeData.Hashes(newest.Path));
    }

    [Fact]
    public async Task RestoreAsync_OldBackup_NewVolumeHasThatDayData()
    {
        var s = await CreateSut(sourcePolicy: "latest:1", targetPolicy: "*");
        var first = await s.Sut.BackupAsync("app").Within(Bound);
        var expected = TreeData.Hashes(s.Path);
        s.Time.Advance(TimeSpan.FromDays(1));
        TreeData.WriteRandomFile(Path.Combine(s.Path, "data.bin"), 1 << 20, 8);
        await s.Sut.BackupAsync("app").Within(Bound);

        var restored = await s.Sut.RestoreAsync(first.Name, "app-restored").Within(Bound);

        Assert.False(restored.IsReadOnly);
        Assert.Equal(expected, TreeData.Hashes(restored.Path));
        await File.WriteAllTextAsync(Path.Combine(restored.Path, "writable.txt"), "yes");
        Assert.DoesNotContain(Directory.GetDirectories(s.Src.Root), d => Path.GetFileName(d).StartsWith(".restore-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RestoreAsync_UnknownBackup_ThrowsVolumeNotFound()
    {
        var s = await CreateSut();

        await Assert.ThrowsAsync<VolumeNotFoundException>(() => s.Sut.RestoreAsync("app@backup.p1.h1.20200101T000000Z", "x").Within(Bound));
    }

    [Fact]
    public async Task RestoreAsync_NameTaken_ThrowsVolumeExistsAndKeepsExisting()
    {
        var s = await CreateSut();
        var b = await s.Sut.BackupAsync("app").Within(Bound);

        await Assert.ThrowsAsync<VolumeExistsException>(() => s.Sut.RestoreAsync(b.Name, "app").Within(Bound));

        Assert.True(File.Exists(Path.Combine(s.Path, "data.bin")));
    }

    [Fact]
    public async Task SendAsync_HalfReceivedCopyOnTarget_RemovedAndResent()
    {
        var s = await CreateSut();
        var b = await s.Sut.SnapshotAsync("app").Within(Bound);
        // A crashed earlier send: a writable subvolume with the backup's name and no received UUID.
        await s.Dst.CreateAsync(b.Name);

        var sent = await s.Sut.SendAsync("app").Within(Bound);

        Assert.Equal(1, sent);
        var info = await s.Dst.GetAsync(b.Name);
        Assert.NotNull(info.ReceivedUuid);
        Assert.True(info.IsReadOnly);
    }

    [Fact]
    public void Constructor_BadOptions_NamesTheProperty()
    {
        var v = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = "/tmp" });

        var ex = Assert.Throws<ArgumentException>(() => new VolumeBackups(v, v, new BackupOptions { ProjectId = "p", HostId = "h", TargetRetention = "24q" }));
        Assert.Contains("TargetRetention", ex.Message, StringComparison.Ordinal);
        ex = Assert.Throws<ArgumentException>(() => new VolumeBackups(v, v, new BackupOptions { ProjectId = "p.x", HostId = "h" }));
        Assert.Contains("ProjectId", ex.Message, StringComparison.Ordinal);
    }
}
