using DeCloud.Storage.Tests.Fixtures;
using DeCloud.Testing;

namespace DeCloud.Storage.Tests;

public sealed class BtrfsVolumesTests(BtrfsHosts hosts)
{
    private static readonly TimeSpan Bound = TimeBox.RealPart;

    private async Task<BtrfsVolumes> CreateSut() => (await hosts.NewPairAsync()).Source;

    [Fact]
    public async Task CreateSnapshotList_ReadOnlySnapshot_ReportsUuidsAndParent()
    {
        var sut = await CreateSut();
        var vol = await sut.CreateAsync("vm-1").Within(Bound);
        await File.WriteAllTextAsync(Path.Combine(vol.Path, "hello.txt"), "hi", TestContext.Current.CancellationToken);
        var snap = await sut.SnapshotAsync("vm-1", "vm-1@s1").Within(Bound);

        var list = await sut.ListAsync().Within(Bound);

        Assert.Equal(["vm-1", "vm-1@s1"], list.Select(s => s.Name));
        Assert.False(list[0].IsReadOnly);
        Assert.True(list[1].IsReadOnly);
        Assert.Equal(vol.Uuid, snap.ParentUuid);
        Assert.Null(snap.ReceivedUuid);
        Assert.NotEqual(Guid.Empty, snap.Uuid);
        Assert.Equal("hi", await File.ReadAllTextAsync(Path.Combine(snap.Path, "hello.txt"), TestContext.Current.CancellationToken));
        Assert.Contains("Read-only", Assert.ThrowsAny<IOException>(() => File.WriteAllText(Path.Combine(snap.Path, "x"), "no")).Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task DeleteAsync_ExistingVolume_RemovesIt()
    {
        var sut = await CreateSut();
        await sut.CreateAsync("gone").Within(Bound);

        await sut.DeleteAsync("gone").Within(Bound);

        Assert.Null(await sut.FindAsync("gone").Within(Bound));
        Assert.False(Directory.Exists(Path.Combine(sut.Root, "gone")));
    }

    [Fact]
    public async Task DeleteAsync_UnknownVolume_ThrowsVolumeNotFound()
    {
        var sut = await CreateSut();

        var ex = await Assert.ThrowsAsync<VolumeNotFoundException>(() => sut.DeleteAsync("nope").Within(Bound));

        Assert.Equal("nope", ex.VolumeName);
        Assert.Contains("nope", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SnapshotAsync_UnknownSource_ThrowsVolumeNotFound()
    {
        var sut = await CreateSut();

        await Assert.ThrowsAsync<VolumeNotFoundException>(() => sut.SnapshotAsync("missing", "missing@1").Within(Bound));
    }

    [Fact]
    public async Task CreateAsync_ExistingName_ThrowsVolumeExists()
    {
        var sut = await CreateSut();
        await sut.CreateAsync("twice").Within(Bound);

        await Assert.ThrowsAsync<VolumeExistsException>(() => sut.CreateAsync("twice").Within(Bound));
    }

    [Theory]
    [InlineData("..")]
    [InlineData("../etc")]
    [InlineData("a/b")]
    [InlineData("/abs")]
    [InlineData("nul\0byte")]
    [InlineData("")]
    [InlineData(".hidden")]
    [InlineData("space name")]
    public async Task CreateAsync_PathTrick_ThrowsArgumentAndTouchesNothing(string name)
    {
        var sut = await CreateSut();
        var before = Directory.GetFileSystemEntries(Path.GetDirectoryName(sut.Root)!).Length;

        var ex = await Assert.ThrowsAsync<ArgumentException>(() => sut.CreateAsync(name));

        Assert.Contains("name", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, Directory.GetFileSystemEntries(Path.GetDirectoryName(sut.Root)!).Length);
        Assert.Empty(await sut.ListAsync().Within(Bound));
    }

    [Fact]
    public async Task CreateAsync_TooLongName_ThrowsArgument()
    {
        var sut = await CreateSut();

        var ex = await Assert.ThrowsAsync<ArgumentException>(() => sut.CreateAsync(new string('a', VolumeName.MaxLength + 1)));

        Assert.Contains("at most", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EnsureImagesDirectoryAsync_NewVolume_SetsNoCowAttribute()
    {
        var sut = await CreateSut();
        await sut.CreateAsync("vm-img").Within(Bound);

        var dir = await sut.EnsureImagesDirectoryAsync("vm-img").Within(Bound);
        await using (var f = File.Create(Path.Combine(dir, "disk.raw")))
        {
            f.SetLength(1 << 20);
        }

        var dirAttrs = await ProcessRunner.RunAsync("lsattr", ["-d", dir]);
        var fileAttrs = await ProcessRunner.RunAsync("lsattr", [Path.Combine(dir, "disk.raw")]);
        Assert.Contains("C", dirAttrs.StandardOutput.Split(' ')[0], StringComparison.Ordinal);
        Assert.Contains("C", fileAttrs.StandardOutput.Split(' ')[0], StringComparison.Ordinal);
    }
}
