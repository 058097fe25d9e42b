using DeCloud.Testing;
using DeCloud.Virtualization.DomainXml;

namespace DeCloud.Virtualization.Tests.DomainXml;

public sealed class NoCloudSeedTests
{
    [Fact]
    public async Task WriteAsync_Files_BlkidSeesIso9660LabelledCidata()
    {
        RealDependency.RequireExecutable("blkid");
        var dir = Directory.CreateTempSubdirectory("dcv-seed-");
        var image = Path.Combine(dir.FullName, "seed.iso");
        try
        {
            await NoCloudSeed.WriteAsync(image, "#cloud-config\nhostname: dcv\n", "instance-id: dcv-1\nlocal-hostname: dcv\n", "version: 2\nethernets: {}\n").Within();
            Assert.Equal(["seed.iso"], Directory.EnumerateFileSystemEntries(dir.FullName).Select(Path.GetFileName));

            var label = await ProcessRunner.RunAsync("blkid", ["-o", "value", "-s", "LABEL", image]);
            Assert.Equal("cidata", label.StandardOutput.Trim());
            var type = await ProcessRunner.RunAsync("blkid", ["-o", "value", "-s", "TYPE", image]);
            Assert.Equal("iso9660", type.StandardOutput.Trim());
            // The host kernel here has no iso9660; RealGuestTests mounts this image inside the guest and reads it.
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Build_Layout_HasVolumeDescriptorsAndWholeSectors()
    {
        var image = NoCloudSeed.Build("u", "m", null, DateTimeOffset.UnixEpoch.AddYears(50));
        Assert.Equal(0, image.Length % 2048);
        Assert.Equal("CD001", System.Text.Encoding.ASCII.GetString(image, 16 * 2048 + 1, 5));
        Assert.Equal(255, image[17 * 2048]);
        Assert.Equal("cidata", System.Text.Encoding.ASCII.GetString(image, 16 * 2048 + 40, 32).TrimEnd());
        Assert.Equal(23 * 2048, image.Length);
    }

    [Fact]
    public async Task WriteAsync_Oversized_ThrowsAndLeavesExistingSeed()
    {
        var path = Path.Combine(Path.GetTempPath(), $"dcv-seed-{Guid.NewGuid():N}.iso");
        await File.WriteAllTextAsync(path, "previous");
        try
        {
            var ex = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => NoCloudSeed.WriteAsync(path, new string('x', NoCloudSeed.MaxFileBytes + 1), "m"));
            Assert.Contains("user-data", ex.Message, StringComparison.Ordinal);
            Assert.Equal("previous", await File.ReadAllTextAsync(path));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
