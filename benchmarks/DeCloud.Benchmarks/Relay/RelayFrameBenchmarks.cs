using System.Buffers;
using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using DeCloud.Relay.Protocol;

namespace DeCloud.Benchmarks.Relay;

/// <summary>
/// Decoding a buffer of 64 data frames (1 KiB each) with the relay's allocation-free decoder against a baseline that
/// reads the same frames the classic way, with a <see cref="BinaryReader"/> over a <see cref="MemoryStream"/> and a copy per payload.
/// </summary>
[MemoryDiagnoser]
public class RelayFrameBenchmarks
{
    private byte[] _frames = [];

    [GlobalSetup]
    public void Setup()
    {
        var one = new byte[FrameHeader.Size + 1024];
        new FrameHeader(FrameHeader.CurrentVersion, FrameType.Data, 0, 7, 1024).Write(one);
        _frames = Enumerable.Repeat(one, 64).SelectMany(f => f).ToArray();
    }

    [Benchmark(Baseline = true)]
    public long BinaryReaderDecode()
    {
        using var reader = new BinaryReader(new MemoryStream(_frames));
        long total = 0;
        while (reader.BaseStream.Position < reader.BaseStream.Length)
        {
            var header = reader.ReadBytes(FrameHeader.Size);
            var length = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(8));
            total += reader.ReadBytes(length).Length;
        }

        return total;
    }

    [Benchmark]
    public long FrameDecoderDecode()
    {
        var buffer = new ReadOnlySequence<byte>(_frames);
        long total = 0;
        while (FrameDecoder.TryDecode(ref buffer, out _, out var payload) == FrameDecodeStatus.Ok)
        {
            total += payload.Length;
        }

        return total;
    }
}
