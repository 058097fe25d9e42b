using System.IO.Hashing;
using CsCheck;
using DeCloud.Storage.Moves;
using DeCloud.Storage.Tests.Fixtures;
using DeCloud.Testing;

namespace DeCloud.Storage.Tests.Moves;

/// <summary>The staging file: block layout, O_DIRECT appends, durability accounting, and what survives damage.</summary>
public sealed class StagingFileTests(BtrfsHosts hosts) : IDisposable
{
    private static readonly Guid Snapshot = Guid.Parse("0b0c6a58-8d43-4f1e-9a57-3f6c2b8f1a01");
    private static readonly Guid Parent = Guid.Parse("7d2e1f00-1111-4a4a-8b8b-000000000002");
    private const int ChunkSize = 64 * 1024;
    private readonly string _dir = Directory.CreateTempSubdirectory("dcs7b-staging-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Data(int seed, int length)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>Writes <paramref name="lengths"/>.Length chunks (seeded by index) and returns their data.</summary>
    private static async Task<List<byte[]>> WriteChunks(string path, int[] lengths)
    {
        var chunks = new List<byte[]>();
        using var sut = StagingFile.Open(path, Snapshot, Parent, ChunkSize);
        for (var i = 0; i < lengths.Length; i++)
        {
            var data = Data(i, lengths[i]);
            await sut.AppendAsync(XxHash128.Hash(data), data, CancellationToken.None).AsTask().Within();
            chunks.Add(data);
        }

        return chunks;
    }

    private static async Task AssertPrefix(StagingFile sut, List<byte[]> written, int count)
    {
        Assert.Equal(count, sut.Count);
        var buffer = new byte[ChunkSize];
        for (var i = 0; i < count; i++)
        {
            var n = await sut.ReadAsync(i, buffer, CancellationToken.None).AsTask().Within();
            Assert.True(written[i].AsSpan().SequenceEqual(buffer.AsSpan(0, n)), $"chunk {i} differs");
            Assert.Equal(XxHash128.Hash(written[i]), sut.Hashes[i]);
        }
    }

    [Fact]
    public async Task AppendAsync_OnBtrfs_WritesDirectAlignedRecordsThatReopenWhole()
    {
        var (_, dst) = await hosts.NewPairAsync();
        var path = Path.Combine(dst.Root, "s.stage");
        var written = await WriteChunks(path, [ChunkSize, ChunkSize, 1000]);

        Assert.Equal(StagingFile.Block + (2 * StagingFile.RecordLength(ChunkSize)) + StagingFile.RecordLength(1000), new FileInfo(path).Length);
        using var sut = StagingFile.Open(path, Snapshot, Parent, ChunkSize);
        Assert.True(sut.IsDirect, "appends on Btrfs bypass the page cache");
        Assert.Null(sut.Discarded);
        Assert.Equal(3, sut.DurableCount);
        await AssertPrefix(sut, written, 3);
    }

    [Fact]
    public async Task FlushToDisk_AfterAppends_CountsThemDurable()
    {
        using var sut = StagingFile.Open(Path.Combine(_dir, "s.stage"), Snapshot, Parent, ChunkSize);
        var data = Data(1, ChunkSize);
        await sut.AppendAsync(XxHash128.Hash(data), data, CancellationToken.None).AsTask().Within();
        await sut.AppendAsync(XxHash128.Hash(data), data, CancellationToken.None).AsTask().Within();
        Assert.Equal(0, sut.DurableCount);

        sut.FlushToDisk();

        Assert.Equal(2, sut.DurableCount);
        sut.TruncateTo(1);
        Assert.Equal(1, sut.DurableCount);
    }

    [Fact]
    public async Task Open_AnotherStreamsFile_StartsOver()
    {
        var path = Path.Combine(_dir, "s.stage");
        await WriteChunks(path, [ChunkSize, ChunkSize]);

        using var sut = StagingFile.Open(path, Guid.NewGuid(), Parent, ChunkSize);

        Assert.Equal(0, sut.Count);
        Assert.Null(sut.Discarded);
        Assert.Equal(StagingFile.Block, new FileInfo(path).Length);
    }

    [Fact]
    public async Task Open_LastRecordTorn_KeepsTheWholeRecordsAndSaysWhy()
    {
        var path = Path.Combine(_dir, "s.stage");
        var written = await WriteChunks(path, [ChunkSize, ChunkSize, ChunkSize]);
        // A crash in the middle of the third chunk's data.
        using (var f = new FileStream(path, FileMode.Open))
        {
            f.SetLength(f.Length - 5000);
        }

        using var sut = StagingFile.Open(path, Snapshot, Parent, ChunkSize);

        await AssertPrefix(sut, written, 2);
        Assert.Equal(2, sut.Discarded!.Chunk);
        Assert.Contains("cut short", sut.Discarded.Reason, StringComparison.Ordinal);
        Assert.Equal(StagingFile.Block + (2 * StagingFile.RecordLength(ChunkSize)), new FileInfo(path).Length);
    }

    [Fact]
    public async Task Open_AnyByteDamaged_KeepsOnlyAVerifiedPrefixOfWhatWasWritten()
    {
        var path = Path.Combine(_dir, "p.stage");
        int[] lengths = [ChunkSize, 5000, ChunkSize, 1];
        var written = await WriteChunks(path, lengths);
        var pristine = await File.ReadAllBytesAsync(path);

        await Gen.Select(Gen.Int[StagingFile.Block, pristine.Length - 1], Gen.Byte[1, 255], Gen.Int[0, pristine.Length])
            .SampleAsync(async (position, flip, cut) =>
            {
                var damaged = pristine[..cut];
                if (position < damaged.Length)
                {
                    damaged[position] ^= flip;
                }

                await File.WriteAllBytesAsync(path, damaged);
                using var sut = StagingFile.Open(path, Snapshot, Parent, ChunkSize);

                // Whatever was damaged, the file offers a prefix of the chunks written, each verified,
                // and says why it stopped wherever the kept records do not reach the end of the file.
                Assert.InRange(sut.Count, 0, written.Count);
                await AssertPrefix(sut, written, sut.Count);
                var keptEnd = StagingFile.Block + lengths.Take(sut.Count).Sum(StagingFile.RecordLength);
                Assert.Equal(cut >= StagingFile.Block && keptEnd < cut, sut.Discarded is not null);
            }, iter: 60, threads: 1);
    }
}
