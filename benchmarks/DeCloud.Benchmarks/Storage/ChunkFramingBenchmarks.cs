using System.Buffers;
using BenchmarkDotNet.Attributes;
using DeCloud.Storage.Moves;

namespace DeCloud.Benchmarks.Storage;

/// <summary>
/// Per-chunk cost of the move protocol on the sender: building a checksummed frame in place
/// (XxHash128 over 1 MiB) with and without Brotli, against a plain copy of the same bytes (the
/// least any pump must do). The quick area measures the whole pipeline against a raw pipe.
/// </summary>
[MemoryDiagnoser]
public class ChunkFramingBenchmarks
{
    private const int ChunkSize = 1 << 20;
    private byte[] _data = [];
    private byte[] _copy = [];

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[ChunkSize];
        new Random(1).NextBytes(_data);
        _copy = new byte[WireFormat.ChunkDataOffset + ChunkSize];
    }

    [Benchmark(Baseline = true)]
    public void CopyOnly() => _data.CopyTo(_copy, WireFormat.ChunkDataOffset);

    [Benchmark]
    public int FrameWithChecksum() => Frame(compress: false);

    [Benchmark]
    public int FrameWithChecksumAndBrotli() => Frame(compress: true);

    private int Frame(bool compress)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(WireFormat.ChunkDataOffset + ChunkSize);
        _data.CopyTo(buffer, WireFormat.ChunkDataOffset);
        var frame = VolumeMove.BuildChunkFrame(buffer, 0, ChunkSize, compress);
        ArrayPool<byte>.Shared.Return(frame.Buffer);
        return frame.Length;
    }
}
