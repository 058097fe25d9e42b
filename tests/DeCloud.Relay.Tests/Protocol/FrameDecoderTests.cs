using System.Buffers;
using CsCheck;
using DeCloud.Relay.Protocol;

namespace DeCloud.Relay.Tests.Protocol;

public sealed class FrameDecoderTests
{
    private static byte[] Encode(FrameType type, uint streamId, byte[] payload, byte version = FrameHeader.CurrentVersion)
    {
        var bytes = new byte[FrameHeader.Size + payload.Length];
        new FrameHeader(version, type, 0, streamId, payload.Length).Write(bytes);
        payload.CopyTo(bytes, FrameHeader.Size);
        return bytes;
    }

    private static List<(FrameHeader Header, byte[] Payload)> DecodeAll(ReadOnlySequence<byte> buffer, out FrameDecodeStatus last)
    {
        var frames = new List<(FrameHeader, byte[])>();
        while (true)
        {
            last = FrameDecoder.TryDecode(ref buffer, out var header, out var payload);
            if (last != FrameDecodeStatus.Ok)
            {
                return frames;
            }

            frames.Add((header, payload.ToArray()));
        }
    }

    [Fact]
    public void TryDecode_WholeFrame_ReturnsHeaderAndPayload()
    {
        var buffer = new ReadOnlySequence<byte>(Encode(FrameType.Data, 7, [1, 2, 3]));
        Assert.Equal(FrameDecodeStatus.Ok, FrameDecoder.TryDecode(ref buffer, out var header, out var payload));
        Assert.Equal(FrameType.Data, header.Type);
        Assert.Equal(7u, header.StreamId);
        Assert.Equal([1, 2, 3], payload.ToArray());
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void TryDecode_Truncated_NeedsMoreDataAtEveryCut()
    {
        var bytes = Encode(FrameType.MapRequest, 0, new byte[100]);
        for (var cut = 0; cut < bytes.Length; cut++)
        {
            var buffer = new ReadOnlySequence<byte>(bytes, 0, cut);
            Assert.Equal(FrameDecodeStatus.NeedMoreData, FrameDecoder.TryDecode(ref buffer, out _, out _));
            Assert.Equal(cut, buffer.Length);
        }
    }

    [Fact]
    public void TryDecode_OversizedLength_ReportsOversizedBeforePayloadArrives()
    {
        var header = new byte[FrameHeader.Size];
        new FrameHeader(FrameHeader.CurrentVersion, FrameType.Data, 0, 1, FrameHeader.MaxPayload + 1).Write(header);
        var buffer = new ReadOnlySequence<byte>(header);
        Assert.Equal(FrameDecodeStatus.Oversized, FrameDecoder.TryDecode(ref buffer, out _, out _));
    }

    [Fact]
    public void TryDecode_NegativeLength_ReportsOversized()
    {
        var header = new byte[FrameHeader.Size];
        new FrameHeader(FrameHeader.CurrentVersion, FrameType.Data, 0, 1, -5).Write(header);
        var buffer = new ReadOnlySequence<byte>(header);
        Assert.Equal(FrameDecodeStatus.Oversized, FrameDecoder.TryDecode(ref buffer, out _, out _));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(24)]
    [InlineData(255)]
    public void TryDecode_UnknownType_ReportsUnknownType(byte type)
    {
        var buffer = new ReadOnlySequence<byte>(Encode((FrameType)type, 0, []));
        Assert.Equal(FrameDecodeStatus.UnknownType, FrameDecoder.TryDecode(ref buffer, out _, out _));
    }

    [Fact]
    public void TryDecode_OtherVersion_RefusedFromTheFirstByte()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 2 });
        Assert.Equal(FrameDecodeStatus.UnsupportedVersion, FrameDecoder.TryDecode(ref buffer, out _, out _));
        var whole = new ReadOnlySequence<byte>(Encode(FrameType.Hello, 0, [], version: 2));
        Assert.Equal(FrameDecodeStatus.UnsupportedVersion, FrameDecoder.TryDecode(ref whole, out var header, out _));
        Assert.Equal(2, header.Version);
    }

    [Fact]
    public void TryDecode_RandomBytes_NeverThrowsAndNeverOverreads()
    {
        Gen.Byte.Array[0, 200].Sample(bytes =>
        {
            var buffer = new ReadOnlySequence<byte>(bytes);
            var frames = DecodeAll(buffer, out var last);
            var consumed = frames.Sum(f => FrameHeader.Size + f.Payload.Length);
            Assert.True(consumed <= bytes.Length);
            foreach (var (header, payload) in frames)
            {
                Assert.Equal(header.Length, payload.Length);
                Assert.InRange(header.Length, 0, FrameHeader.MaxPayload);
            }

            Assert.NotEqual(FrameDecodeStatus.Ok, last);
        }, iter: 20_000);
    }

    [Fact]
    public void TryDecode_ValidFramesSplitAnywhere_DecodesTheSameFrames()
    {
        var gen = Gen.Select(Gen.Int[1, 20], Gen.UInt, Gen.Byte.Array[0, 300]).Array[1, 8];
        gen.Select(Gen.Int[0, 100], (frames, seed) => (frames, seed)).Sample(t =>
        {
            var (frames, seed) = t;
            var bytes = frames.SelectMany(f => Encode((FrameType)f.Item1, f.Item2, f.Item3)).ToArray();
            var random = new Random(seed);
            var cuts = Enumerable.Range(0, random.Next(0, 6)).Select(_ => random.Next(0, bytes.Length + 1)).Distinct().Order().ToList();
            var sequence = Segments.Build(bytes, cuts);
            var decoded = DecodeAll(sequence, out var last);
            Assert.Equal(FrameDecodeStatus.NeedMoreData, last);
            Assert.Equal(frames.Length, decoded.Count);
            for (var i = 0; i < frames.Length; i++)
            {
                Assert.Equal((FrameType)frames[i].Item1, decoded[i].Header.Type);
                Assert.Equal(frames[i].Item2, decoded[i].Header.StreamId);
                Assert.Equal(frames[i].Item3, decoded[i].Payload);
            }
        }, iter: 2_000);
    }

    [Fact]
    public void TryDecode_ValidFrameWithGarbageAppended_DecodesFrameThenStops()
    {
        Gen.Byte.Array[1, 64].Sample(garbage =>
        {
            var bytes = Encode(FrameType.Ping, 0, new byte[8]).Concat(garbage).ToArray();
            var decoded = DecodeAll(new ReadOnlySequence<byte>(bytes), out var last);
            Assert.Equal(FrameType.Ping, decoded[0].Header.Type);
            Assert.NotEqual(FrameDecodeStatus.Ok, last);
        }, iter: 2_000);
    }
}

internal static class Segments
{
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>Builds a multi-segment sequence split at <paramref name="cuts"/>.</summary>
    public static ReadOnlySequence<byte> Build(byte[] bytes, IReadOnlyList<int> cuts)
    {
        var bounds = cuts.Where(c => c > 0 && c < bytes.Length).Distinct().Order().Append(bytes.Length).ToList();
        var start = 0;
        Segment? first = null;
        Segment? last = null;
        foreach (var end in bounds)
        {
            var memory = bytes.AsMemory(start, end - start);
            if (first is null)
            {
                first = last = new Segment(memory, 0);
            }
            else
            {
                last = last!.Append(memory);
            }

            start = end;
        }

        return first is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(first, 0, last!, last!.Memory.Length);
    }
}
