using DeCloud.Storage.Tests.Fixtures;
using DeCloud.Testing;

namespace DeCloud.Storage.Tests;

/// <summary>Quota tests get their own filesystem: qgroup accounting slows every other test down.</summary>
public sealed class QuotaTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeBox.RealPart;
    private LoopBtrfs? _fs;

    public async ValueTask InitializeAsync()
    {
        if (RealDependency.IsRoot && RealDependency.FindExecutable("mkfs.btrfs") is not null)
        {
            _fs = await LoopBtrfs.CreateAsync(1L << 30);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_fs is not null)
        {
            await _fs.DisposeAsync();
        }
    }

    private async Task<BtrfsVolumes> CreateSut()
    {
        LoopBtrfs.Require();
        var sut = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = _fs!.NewRoot("q-" + Guid.NewGuid().ToString("N")[..8]) });
        await sut.EnableQuotasAsync().Within(Bound);
        return sut;
    }

    [Fact]
    public async Task GetQuotaAsync_AfterWriteWithLimit_ReportsUsageAndLimit()
    {
        var sut = await CreateSut();
        var vol = await sut.CreateAsync("proj").Within(Bound);
        await sut.SetQuotaLimitAsync("proj", 64L << 20).Within(Bound);
        await File.WriteAllBytesAsync(Path.Combine(vol.Path, "data"), RandomBytes(8 << 20), TestContext.Current.CancellationToken);

        var usage = await sut.GetQuotaAsync("proj").Within(Bound);

        Assert.Equal(64L << 20, usage.LimitBytes);
        Assert.InRange(usage.ReferencedBytes, 8L << 20, 9L << 20);
    }

    [Fact]
    public async Task WriteImageAsync_PastLimit_ThrowsQuotaExceededAndLeavesNoFile()
    {
        var sut = await CreateSut();
        await sut.CreateAsync("small").Within(Bound);
        await sut.SetQuotaLimitAsync("small", 16L << 20).Within(Bound);

        var ex = await Assert.ThrowsAsync<QuotaExceededException>(
            () => sut.WriteImageAsync("small", "disk.raw", new MemoryStream(RandomBytes(48 << 20))).Within(Bound));

        Assert.Equal("small", ex.VolumeName);
        Assert.Equal(16L << 20, ex.LimitBytes);
        Assert.Contains("quota", ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Empty(Directory.GetFiles(Path.Combine(sut.Root, "small", "images"), "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task SetQuotaLimitAsync_Removed_AllowsLargeWrite()
    {
        var sut = await CreateSut();
        await sut.CreateAsync("grow").Within(Bound);
        await sut.SetQuotaLimitAsync("grow", 4L << 20).Within(Bound);
        await sut.SetQuotaLimitAsync("grow", null).Within(Bound);

        var written = await sut.WriteImageAsync("grow", "disk.raw", new MemoryStream(RandomBytes(12 << 20))).Within(Bound);

        Assert.Equal(12L << 20, written);
        Assert.Null((await sut.GetQuotaAsync("grow").Within(Bound)).LimitBytes);
    }

    [Fact]
    public async Task SetQuotaLimitAsync_UnknownVolume_ThrowsVolumeNotFound()
    {
        var sut = await CreateSut();

        await Assert.ThrowsAsync<VolumeNotFoundException>(() => sut.SetQuotaLimitAsync("ghost", 1 << 20).Within(Bound));
    }

    internal static byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        Random.Shared.NextBytes(b);
        return b;
    }
}
