using System.Buffers;
using DeCloud.Relay.Protocol;
using DeCloud.Relay.Tunnel;
using DeCloud.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Relay.Tests.Tunnel;

/// <summary>
/// The tunnel's read loop delivers DATA and FIN into a stream while a pump on another thread may abort it (the public
/// client or the target reset its socket). Both touch the stream's inbound pipe, whose writer is not thread-safe; a
/// write landing after the abort's completion threw on the read loop and closed the whole tunnel, resetting every
/// other stream on it (seen as healthy streams reset mid-transfer under load).
/// </summary>
public sealed class StreamResetRaceTests
{
    private const int Rounds = 300;

    private static readonly ReadOnlySequence<byte> Chunk = new(new byte[4096]);

    [Fact]
    public async Task OnData_RacingALocalAbort_NeverThrowsOnTheReadLoop()
    {
        await using var tunnel = new TunnelConnection(Stream.Null, new TunnelSettings(), isServer: false, TimeProvider.System, NullLogger.Instance, "race");
        var random = new Random(4);
        for (var round = 0; round < Rounds; round++)
        {
            var stream = tunnel.AcceptStream((uint)((2 * round) + 1))!;
            using var start = new Barrier(2);
            var spin = random.Next(0, 4000);

            // The read loop: frames keep arriving for the stream (within its window) while it is aborted.
            var readLoop = Task.Factory.StartNew(() =>
            {
                start.SignalAndWait();
                for (var i = 0; i < 64; i++)
                {
                    Assert.True(stream.OnData(Chunk), "a frame within the window must be accepted (or dropped after the abort)");
                }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

            // The pump: its socket failed, so it aborts the stream.
            var pump = Task.Factory.StartNew(() =>
            {
                start.SignalAndWait();
                Thread.SpinWait(spin);
                stream.Abort(WireError.SocketFailed, "the race test aborts it");
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

            await Task.WhenAll(readLoop, pump).Within(what: $"round {round}");
            await Assert.ThrowsAsync<RelayException>(async () => await DrainAsync(stream).Within());
            Assert.False(tunnel.TryGetStream(stream.Id, out _), "an aborted stream leaves the tunnel's table");
        }

        Assert.Null(tunnel.CloseReason);
    }

    [Fact]
    public async Task OnFin_RacingALocalAbort_LeavesTheStreamEndedOnce()
    {
        await using var tunnel = new TunnelConnection(Stream.Null, new TunnelSettings(), isServer: false, TimeProvider.System, NullLogger.Instance, "race");
        for (var round = 0; round < Rounds; round++)
        {
            var stream = tunnel.AcceptStream((uint)((2 * round) + 1))!;
            using var start = new Barrier(2);
            var fin = Task.Factory.StartNew(() =>
            {
                start.SignalAndWait();
                stream.OnData(Chunk);
                stream.OnFin();
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            var abort = Task.Factory.StartNew(() =>
            {
                start.SignalAndWait();
                stream.Abort(WireError.SocketFailed, "the race test aborts it");
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            await Task.WhenAll(fin, abort).Within(what: $"round {round}");

            // Either the FIN won (the bytes read, then a clean end) or the abort did (a reset); never a hang or a torn pipe.
            try
            {
                var read = await DrainAsync(stream).Within();
                Assert.Equal(Chunk.Length, read);
            }
            catch (RelayException)
            {
            }
        }

        Assert.Null(tunnel.CloseReason);
    }

    private static async Task<long> DrainAsync(TunnelStream stream)
    {
        long total = 0;
        while (true)
        {
            var result = await stream.Input.ReadAsync();
            total += result.Buffer.Length;
            stream.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return total;
            }
        }
    }
}
