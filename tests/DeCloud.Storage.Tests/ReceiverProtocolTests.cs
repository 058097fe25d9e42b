using System.IO.Hashing;
using System.IO.Pipes;
using CsCheck;
using DeCloud.Storage.Moves;
using DeCloud.Storage.Tests.Fixtures;
using DeCloud.Testing;

namespace DeCloud.Storage.Tests;

/// <summary>Bad input straight on the wire: the receiver refuses it clearly and leaves nothing behind.</summary>
public sealed class ReceiverProtocolTests(BtrfsHosts hosts)
{
    private static readonly TimeSpan Bound = TimeBox.RealPart;

    private async Task<(BtrfsVolumes Dst, VolumeReceiver Sut)> CreateSut()
    {
        var (_, dst) = await hosts.NewPairAsync();
        return (dst, new VolumeReceiver(dst));
    }

    /// <summary>A connected in-process stream pair: the test writes frames, the receiver serves the other end.</summary>
    private static (Stream Client, Stream Server) Pair()
    {
        var server = new AnonymousPipeServerStream(PipeDirection.In);
        var client = new AnonymousPipeClientStream(PipeDirection.Out, server.ClientSafePipeHandle);
        var back = new AnonymousPipeServerStream(PipeDirection.In);
        var backClient = new AnonymousPipeClientStream(PipeDirection.Out, back.ClientSafePipeHandle);
        return (new Duplex(back, client), new Duplex(server, backClient));
    }

    private static async Task<Exception?> Serve(VolumeReceiver sut, Stream server)
    {
        try
        {
            await sut.ServeAsync(server).Within(Bound);
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }

    private static WireWriter Hello(string moveId = "m1", string target = "vol") =>
        new WireWriter().U32(WireFormat.Magic).U16(WireFormat.Version).Str(moveId).Str(target);

    [Fact]
    public async Task ServeAsync_GarbageHeader_ThrowsProtocolViolation()
    {
        var (_, sut) = await CreateSut();
        var (client, server) = Pair();
        var serve = Serve(sut, server);

        await client.WriteAsync(new byte[] { 0xEE, 0, 0, 0, 0, 0, 0, 0 });
        client.Dispose();

        var ex = Assert.IsType<TransferException>(await serve);
        Assert.Equal(TransferFailure.ProtocolViolation, ex.Reason);
        Assert.Contains("Unknown frame type", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServeAsync_OversizedControlFrame_ThrowsBeforeAllocating()
    {
        var (_, sut) = await CreateSut();
        var (client, server) = Pair();
        var serve = Serve(sut, server);

        var header = new byte[8];
        WireFormat.WriteHeader(header, FrameType.Hello, 0, int.MaxValue);
        await client.WriteAsync(header);
        client.Dispose();

        var ex = Assert.IsType<TransferException>(await serve);
        Assert.Contains("exceeds the limit", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServeAsync_TruncatedFrame_ThrowsTruncated()
    {
        var (_, sut) = await CreateSut();
        var (client, server) = Pair();
        var serve = Serve(sut, server);

        var header = new byte[8];
        WireFormat.WriteHeader(header, FrameType.Hello, 0, 100);
        await client.WriteAsync(header);
        await client.WriteAsync(new byte[10]);
        client.Dispose();

        var ex = Assert.IsType<TransferException>(await serve);
        Assert.Equal(TransferFailure.Truncated, ex.Reason);
    }

    [Fact]
    public async Task ServeAsync_FrameBeforeHello_ThrowsProtocolViolation()
    {
        var (_, sut) = await CreateSut();
        var (client, server) = Pair();
        var serve = Serve(sut, server);
        var channel = new FrameChannel(client, 1 << 20);

        await channel.SendAsync(FrameType.Verify, new WireWriter().Str("x"), default);
        client.Dispose();

        var ex = Assert.IsType<TransferException>(await serve);
        Assert.Contains("before Hello", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../etc", "vol")]
    [InlineData("m1", "../../root")]
    [InlineData("m1", "a/b")]
    public async Task Hello_PathTricks_RefusedWithReason(string moveId, string target)
    {
        var (dst, sut) = await CreateSut();
        var (client, server) = Pair();
        var serve = Serve(sut, server);
        var channel = new FrameChannel(client, 1 << 20);

        await channel.SendAsync(FrameType.Hello, Hello(moveId, target), default);
        using (var reply = await channel.ReceiveAsync(FrameType.HelloReply, default).AsTask().Within(Bound))
        {
            var r = reply.Reader();
            Assert.Equal((byte)WireStatus.InvalidRequest, r.U8("status"));
            Assert.False(string.IsNullOrEmpty(r.Str("message")));
        }

        client.Dispose();
        Assert.Null(await serve);
        Assert.Empty(await dst.ListAsync());
    }

    [Fact]
    public async Task BeginStream_NameOutsideMove_Refused()
    {
        var (dst, sut) = await CreateSut();
        var (client, server) = Pair();
        var serve = Serve(sut, server);
        var channel = new FrameChannel(client, 1 << 20);
        await channel.SendAsync(FrameType.Hello, Hello(), default);
        (await channel.ReceiveAsync(FrameType.HelloReply, default)).Dispose();

        await channel.SendAsync(FrameType.BeginStream, new BeginStream("..", Guid.NewGuid(), null, "", 1 << 20).Write(), default);
        using (var ready = await channel.ReceiveAsync(FrameType.StreamReady, default).AsTask().Within(Bound))
        {
            Assert.Equal((byte)WireStatus.InvalidRequest, ready.Reader().U8("status"));
        }

        client.Dispose();
        Assert.Null(await serve);
        Assert.Empty(await dst.ListAsync());
    }

    [Fact]
    public async Task Stream_CorruptedBtrfsDataWithValidChecksums_ReceiveFailedAndNoPartialSubvolume()
    {
        var (dst, sut) = await CreateSut();
        var (client, server) = Pair();
        var serve = Serve(sut, server);
        var channel = new FrameChannel(client, 1 << 20);
        await channel.SendAsync(FrameType.Hello, Hello(), default);
        (await channel.ReceiveAsync(FrameType.HelloReply, default)).Dispose();
        const string name = "vol@move-m1-0";

        await channel.SendAsync(FrameType.BeginStream, new BeginStream(name, Guid.NewGuid(), null, "", 64 * 1024).Write(), default);
        (await channel.ReceiveAsync(FrameType.StreamReady, default)).Dispose();
        await channel.SendAsync(FrameType.ResumeFrom, new WireWriter().U64(0), default);
        // A real stream header followed by garbage: btrfs receive must reject it.
        var data = new byte[64 * 1024];
        new Random(5).NextBytes(data);
        "btrfs-stream\0"u8.CopyTo(data);
        data[13] = 1;
        var frame = new byte[WireFormat.ChunkDataOffset + data.Length];
        data.CopyTo(frame, WireFormat.ChunkDataOffset);
        WireFormat.WriteHeader(frame, FrameType.Chunk, 0, WireFormat.ChunkHeaderSize + data.Length);
        BitConverter.TryWriteBytes(frame.AsSpan(8), 0L);
        BitConverter.TryWriteBytes(frame.AsSpan(16), data.Length);
        XxHash128.Hash(data, frame.AsSpan(20, 16));
        await channel.WriteRawAsync(frame, default);
        await channel.SendAsync(FrameType.EndStream, new WireWriter().U64(1).U64((ulong)data.Length), default);

        using (var result = await channel.ReceiveAsync(FrameType.StreamResult, default).AsTask().Within(Bound))
        {
            var r = result.Reader();
            Assert.Equal((byte)WireStatus.ReceiveFailed, r.U8("status"));
            r.Guid("uuid");
            Assert.Contains("receive", r.Str("message"), StringComparison.Ordinal);
        }

        client.Dispose();
        Assert.Null(await serve);
        Assert.Empty(await dst.ListAsync());
        Assert.False(Directory.Exists(sut.StagingPath), "nothing is staged by default");
    }

    [Fact]
    public async Task ServeAsync_RandomBytes_NeverHangsOrCorrupts()
    {
        var (dst, sut) = await CreateSut();
        await Gen.Byte.Array[0, 64].SampleAsync(async bytes =>
        {
            var (client, server) = Pair();
            var serve = Serve(sut, server);
            await client.WriteAsync(bytes);
            client.Dispose();
            var error = await serve;
            Assert.True(error is null or TransferException, error?.ToString());
        }, iter: 50);

        Assert.Empty(await dst.ListAsync());
    }

    private sealed class Duplex(Stream read, Stream write) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => write.Flush();
        public override int Read(byte[] buffer, int offset, int count) => read.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => read.ReadAsync(buffer, cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => write.Write(buffer, offset, count);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => write.WriteAsync(buffer, cancellationToken);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                write.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
