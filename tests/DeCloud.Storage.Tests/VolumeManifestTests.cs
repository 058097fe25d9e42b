using DeCloud.Storage.Tests.Fixtures;
using DeCloud.Testing;

namespace DeCloud.Storage.Tests;

/// <summary>The verification manifest sees content, ownership, modes and times.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class VolumeManifestTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("dcs7b-manifest-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string CreateSut()
    {
        TreeData.WriteRandomFile(Path.Combine(_root, "a", "file.bin"), 10_000, 1);
        File.CreateSymbolicLink(Path.Combine(_root, "link"), "a/file.bin");
        return Path.Combine(_root, "a", "file.bin");
    }

    [Fact]
    public void Compute_SameTree_SameDigest()
    {
        CreateSut();

        Assert.True(VolumeManifest.Compute(_root, default).Matches(VolumeManifest.Compute(_root, default)));
    }

    public static TheoryData<string> Changes => ["owner", "group", "mode", "mtime", "mtime_ns", "setuid", "content", "link_owner", "dir_mtime"];

    [Theory]
    [MemberData(nameof(Changes))]
    public async Task Compute_OneAttributeChanged_DigestDiffers(string change)
    {
        RealDependency.RequireRoot("changing file ownership");
        var file = CreateSut();
        var before = VolumeManifest.Compute(_root, default);
        var mtime = File.GetLastWriteTimeUtc(file);

        switch (change)
        {
            case "owner":
                File.SetUnixFileMode(file, File.GetUnixFileMode(file)); // unchanged mode, to show only the owner moves the digest
                await Chown(file, "1234");
                break;
            case "group":
                await Chown(file, ":5678");
                break;
            case "mode":
                File.SetUnixFileMode(file, UnixFileMode.UserRead);
                break;
            case "setuid":
                File.SetUnixFileMode(file, File.GetUnixFileMode(file) | UnixFileMode.SetUser);
                break;
            case "mtime":
                File.SetLastWriteTimeUtc(file, mtime.AddSeconds(-1));
                break;
            case "mtime_ns":
                File.SetLastWriteTimeUtc(file, mtime.AddTicks(mtime.Ticks % 10 == 9 ? -1 : 1));
                break;
            case "content":
                var bytes = File.ReadAllBytes(file);
                bytes[5000] ^= 1;
                File.WriteAllBytes(file, bytes);
                File.SetLastWriteTimeUtc(file, mtime);
                break;
            case "link_owner":
                await Chown(Path.Combine(_root, "link"), "1234", "-h");
                break;
            case "dir_mtime":
                Directory.SetLastWriteTimeUtc(Path.Combine(_root, "a"), new DateTime(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc));
                break;
        }

        var after = VolumeManifest.Compute(_root, default);
        Assert.False(before.Matches(after), $"a changed {change} must change the manifest");
        Assert.Equal(before.Entries, after.Entries);
    }

    [Fact]
    public async Task EntryAttributes_Of_ReadsOwnerModeAndTimeWithoutFollowingLinks()
    {
        RealDependency.RequireRoot("changing file ownership");
        var file = CreateSut();
        await Chown(file, "1234:5678");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.SetGroup);
        var when = new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc).AddTicks(1234567);
        File.SetLastWriteTimeUtc(file, when);

        var a = EntryAttributes.Of(file);
        var link = EntryAttributes.Of(Path.Combine(_root, "link"));

        Assert.Equal((1234u, 5678u, 0b010_110_100_000), (a.Uid, a.Gid, a.Mode));
        Assert.Equal(new DateTimeOffset(when).ToUnixTimeSeconds(), a.MtimeSeconds);
        Assert.Equal(123_456_700u, a.MtimeNanoseconds);
        Assert.Equal(0u, link.Uid);
        Assert.Equal(0b111_111_111, link.Mode);
    }

    private static async Task Chown(string path, string owner, string? flag = null)
    {
        List<string> args = flag is null ? [owner, path] : [flag, owner, path];
        (await ProcessRunner.RunAsync("chown", args).Within()).EnsureSuccess("chown");
    }
}
