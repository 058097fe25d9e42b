using System.IO.Hashing;
using DeCloud.Storage.Moves;
using DeCloud.Storage.Tests.Fixtures;
using DeCloud.Testing;

namespace DeCloud.Storage.Tests.Moves;

/// <summary>
/// A resume of a live receive, frame by frame over loopback TCP with a real <c>btrfs send</c> stream: a
/// sender that comes back with another snapshot, or with a prefix that is not what the receive already
/// took, is refused with a message that says so, and the receive stays for the right sender.
/// </summary>
public sealed class ResumeProtocolTests(BtrfsHosts hosts)
{
    private const int Chunk = 64 * 1024;
    private const string Name = "vol@move-m1-0";
    private static readonly TimeSpan Bound = TimeBox.RealPart;

    private static async Task<FrameChannel> HelloAsync(MoveHarness harness)
    {
        var channel = new FrameChannel(await harness.ConnectAsync(default).AsTask().Within(Bound), 1 << 20);
        await channel.SendAsync(FrameType.Hello, new WireWriter().U32(WireFormat.Magic).U16(WireFormat.Version).Str("m1").Str("vol"), default);
        using var reply = await channel.ReceiveAsync(FrameType.HelloReply, default).AsTask().Within(Bound);
        Assert.Equal((byte)WireStatus.Ok, reply.Reader().U8("status"));
        return channel;
    }

    private static async Task<(WireStatus Status, long Staged, byte[] Digest, string Message)> BeginAsync(FrameChannel channel, Guid snapshot)
    {
        await channel.SendAsync(FrameType.BeginStream, new BeginStream(Name, snapshot, null, string.Empty, Chunk).Write(), default);
        using var ready = await channel.ReceiveAsync(FrameType.StreamReady, default).AsTask().Within(Bound);
        var r = ready.Reader();
        return ((WireStatus)r.U8("status"), (long)r.U64("staged"), r.Bytes(16, "digest"), r.Str("message"));
    }

    private static async Task SendChunksAsync(FrameChannel channel, byte[] stream, int first, int end)
    {
        for (var i = first; i < end; i++)
        {
            var raw = Math.Min(Chunk, stream.Length - (i * Chunk));
            var buffer = new byte[WireFormat.ChunkDataOffset + Chunk];
            stream.AsSpan(i * Chunk, raw).CopyTo(buffer.AsSpan(WireFormat.ChunkDataOffset));
            var frame = VolumeMove.BuildChunkFrame(buffer, i, raw, compress: false);
            await channel.WriteRawAsync(frame.Buffer.AsMemory(0, frame.Length), default);
        }
    }

    private static byte[] Digest(byte[] stream, int chunks) =>
        WireFormat.PrefixDigest([.. Enumerable.Range(0, chunks).Select(i => XxHash128.Hash(stream.AsSpan(i * Chunk, Math.Min(Chunk, stream.Length - (i * Chunk)))))], chunks);

    [Fact]
    public async Task Resume_OtherSnapshotOrOtherPrefix_RefusedClearlyAndTheRightSenderStillResumes()
    {
        var (src, dst) = await hosts.NewPairAsync();
        var vol = await src.CreateAsync("vol").Within(Bound);
        TreeData.WriteRandomFile(Path.Combine(vol.Path, "disk.raw"), 1 << 20, 21);
        var expected = TreeData.Hashes(vol.Path);
        var snapshot = await src.SnapshotAsync("vol", Name).Within(Bound);
        byte[] stream;
        await using (var send = src.Runner.StartSend(snapshot.Path, null))
        {
            using var buffer = new MemoryStream();
            await send.Output.CopyToAsync(buffer).Within(Bound);
            await send.WaitForSuccessAsync(default).Within(Bound);
            stream = buffer.ToArray();
        }

        var chunks = (stream.Length + Chunk - 1) / Chunk;
        Assert.True(chunks > 8, $"{chunks} chunks");
        await using var harness = new MoveHarness(dst);

        // First connection: four chunks, then the connection drops.
        var first = await HelloAsync(harness);
        Assert.Equal(WireStatus.Ok, (await BeginAsync(first, snapshot.Uuid)).Status);
        await first.SendAsync(FrameType.ResumeFrom, new WireWriter().U64(0), default);
        await SendChunksAsync(first, stream, 0, 4);
        await first.Stream.DisposeAsync();
        await harness.SessionEndedAsync(0).Within(Bound);
        Assert.Equal(4, Assert.Single(harness.Receiver.Sessions).Fed);

        // Another snapshot under the same name: refused, the running receive is untouched.
        var second = await HelloAsync(harness);
        var other = await BeginAsync(second, Guid.NewGuid());
        Assert.Equal(WireStatus.InvalidRequest, other.Status);
        Assert.Contains($"from source snapshot {snapshot.Uuid} is in progress", other.Message, StringComparison.Ordinal);

        // The right snapshot, but a resume whose prefix digest is not the receive's: refused.
        var offer = await BeginAsync(second, snapshot.Uuid);
        Assert.Equal((WireStatus.Ok, 4L), (offer.Status, offer.Staged));
        Assert.Equal(Digest(stream, 4), offer.Digest);
        await second.SendAsync(FrameType.ResumeFrom, new WireWriter().U64(4).Bytes(new byte[16]), default);
        var refused = await Assert.ThrowsAsync<TransferException>(() => second.ReceiveAsync(FrameType.StreamResult, default).AsTask().Within(Bound));
        Assert.Equal(TransferFailure.ProtocolViolation, refused.Reason);
        Assert.Contains("differs from the destination's, so it is resuming another stream", refused.Message, StringComparison.Ordinal);
        await second.Stream.DisposeAsync();
        await harness.SessionEndedAsync(1).Within(Bound);
        Assert.Equal(4, Assert.Single(harness.Receiver.Sessions).Fed);

        // The right sender resumes at chunk 4 and the receive completes.
        var third = await HelloAsync(harness);
        Assert.Equal(4, (await BeginAsync(third, snapshot.Uuid)).Staged);
        await third.SendAsync(FrameType.ResumeFrom, new WireWriter().U64(4).Bytes(Digest(stream, 4)), default);
        await SendChunksAsync(third, stream, 4, chunks);
        await third.SendAsync(FrameType.EndStream, new WireWriter().U64((ulong)chunks).U64((ulong)stream.Length), default);
        using (var result = await third.ReceiveAsync(FrameType.StreamResult, default).AsTask().Within(Bound))
        {
            Assert.Equal((byte)WireStatus.Ok, result.Reader().U8("status"));
        }

        await third.Stream.DisposeAsync();
        var received = await dst.GetAsync(Name).Within(Bound);
        Assert.Equal(snapshot.Uuid, received.ReceivedUuid);
        Assert.Equal(expected, TreeData.Hashes(received.Path));
        Assert.Empty(harness.Receiver.Sessions);
    }
}
