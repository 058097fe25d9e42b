using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using DeCloud.Storage;
using DeCloud.Storage.Moves;

namespace DeCloud.Benchmarks.Storage;

/// <summary>
/// <c>quick storage</c>: 500 MiB of random data moved in full through <see cref="VolumeMove"/> over
/// loopback TCP, against a raw <c>btrfs send | btrfs receive</c> pipe of the same data in the same run,
/// plus an incremental catch-up of 10 MiB both ways. Two loop-mounted Btrfs filesystems under /tmp
/// (prefix <c>dcs-bench-</c>) stand for two hosts; they are removed at the end. A 32 MiB move runs first,
/// untimed, so the timed move measures warm (tier-1 JIT) code, as on a host daemon that has moved before.
/// </summary>
public sealed class StorageQuickArea : IQuickArea
{
    private const int DataMiB = 500;
    private const int DeltaMiB = 10;

    public string Name => "storage";

    public async Task RunAsync(QuickReport report, CancellationToken cancellationToken)
    {
        var free = new DriveInfo(Path.GetTempPath()).AvailableFreeSpace;
        if (free < 6L << 30)
        {
            report.Note($"skipped: needs 6 GiB free under {Path.GetTempPath()}, has {free >> 20} MiB");
            return;
        }

        await using var a = await BenchFs.CreateAsync(2L << 30);
        await using var b = await BenchFs.CreateAsync(3L << 30);
        var src = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = a.Mount });
        var dst = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = b.Mount });

        var warm = await src.CreateAsync("warm", cancellationToken);
        WriteRandom(Path.Combine(warm.Path, "disk.raw"), 32, 9);
        await MoveOnceAsync(src, dst, "warm", new VolumeReceiverOptions(), cancellationToken);
        await dst.DeleteAsync("warm", cancellationToken);

        var vol = await src.CreateAsync("bench", cancellationToken);
        WriteRandom(Path.Combine(vol.Path, "disk.raw"), DataMiB, 1);
        await src.SnapshotAsync("bench", "bench@raw", cancellationToken: cancellationToken);

        // Every timed phase starts with clean page caches' dirty data flushed and ends when the
        // received data is on disk, so neither side pays for the other's writeback.
        await Sh("sync");
        var rawFull = await TimeAsync(() => Sh($"btrfs send -q '{a.Mount}/bench@raw' | btrfs receive -q '{b.Mount}' && btrfs filesystem sync '{b.Mount}'"));

        // Raw pipe, incremental of 10 MiB.
        WriteRandom(Path.Combine(vol.Path, "delta-raw.bin"), DeltaMiB, 2);
        await src.SnapshotAsync("bench", "bench@raw2", cancellationToken: cancellationToken);
        await Sh("sync");
        var rawDelta = await TimeAsync(() => Sh($"btrfs send -q -p '{a.Mount}/bench@raw' '{a.Mount}/bench@raw2' | btrfs receive -q '{b.Mount}' && btrfs filesystem sync '{b.Mount}'"));
        await dst.DeleteAsync("bench@raw2", cancellationToken);
        await dst.DeleteAsync("bench@raw", cancellationToken);
        await src.DeleteAsync("bench@raw2", cancellationToken);
        await src.DeleteAsync("bench@raw", cancellationToken);
        await Sh("sync");

        // Our move over loopback TCP: full send, one catch-up with 10 MiB of new data, freeze, final, verify.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var receiver = new VolumeReceiver(dst);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var serve = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var client = await listener.AcceptTcpClientAsync(stop.Token);
                client.NoDelay = true;
                await receiver.ServeAsync(client.GetStream(), stop.Token);
            }
        }, stop.Token);

        var marks = new Dictionary<MoveStep, long>();
        var hooks = new MoveHooks
        {
            StepStarting = async (step, _) =>
            {
                if (step is MoveStep.CatchUp or MoveStep.Freeze)
                {
                    // The stream just received counts until it is on disk, as for the raw pipe.
                    await Sh($"btrfs filesystem sync '{b.Mount}'");
                }

                marks[step] = Stopwatch.GetTimestamp();
                if (step == MoveStep.CatchUp)
                {
                    WriteRandom(Path.Combine(vol.Path, "delta-move.bin"), DeltaMiB, 3);
                    await Sh("sync");
                    marks[step] = Stopwatch.GetTimestamp();
                }
            },
        };
        var mover = new VolumeMove(src, new VolumeMoveOptions { CatchUpRounds = 1 });
        await Sh("sync");
        var start = Stopwatch.GetTimestamp();
        var result = await mover.MoveAsync("bench", async ct =>
        {
            var c = new TcpClient { NoDelay = true };
            await c.ConnectAsync((IPEndPoint)listener.LocalEndpoint, ct);
            return c.GetStream();
        }, hooks, null, cancellationToken);
        var moveTotal = Stopwatch.GetElapsedTime(start);
        await stop.CancelAsync();
        try
        {
            await serve;
        }
        catch (OperationCanceledException)
        {
        }

        var fullSend = Between(marks, MoveStep.FullSend, MoveStep.CatchUp);
        var catchUp = Between(marks, MoveStep.CatchUp, MoveStep.Freeze);
        var verify = Between(marks, MoveStep.Verify, MoveStep.CutOver);
        double Rate(TimeSpan t) => DataMiB / t.TotalSeconds;

        // The same data moved back without disk staging (resume restarts a stream from zero).
        await Sh("sync");
        var back = await MoveOnceAsync(dst, src, "bench", new VolumeReceiverOptions { StageChunks = false }, cancellationToken);

        report.Result(("config", "full_500mib_staged"),
            ("staging_sync_mib", new VolumeReceiverOptions().StagingSyncBytes >> 20),
            ("raw_pipe_mib_per_s", Rate(rawFull)),
            ("move_full_send_mib_per_s", Rate(fullSend)),
            ("ratio_vs_raw_pipe", rawFull / fullSend),
            ("move_end_to_end_mib_per_s", Rate(moveTotal)),
            ("verify_ms", verify.TotalMilliseconds),
            ("stream_bytes", result.StreamBytes));
        report.Result(("config", "full_500mib_unstaged"),
            ("raw_pipe_mib_per_s", Rate(rawFull)),
            ("move_full_send_mib_per_s", Rate(back.FullSend)),
            ("ratio_vs_raw_pipe", rawFull / back.FullSend),
            ("move_end_to_end_mib_per_s", Rate(back.Total)));
        report.Result(("config", "incremental_10mib"),
            ("raw_pipe_ms", rawDelta.TotalMilliseconds),
            ("move_catch_up_ms", catchUp.TotalMilliseconds),
            ("ratio_vs_raw_pipe", rawDelta / catchUp));
    }

    /// <summary>Moves <paramref name="volume"/> from <paramref name="from"/> to <paramref name="to"/> with no catch-up; times the full send (until on disk) and the whole move.</summary>
    private static async Task<(TimeSpan FullSend, TimeSpan Total)> MoveOnceAsync(BtrfsVolumes from, BtrfsVolumes to, string volume, VolumeReceiverOptions options, CancellationToken cancellationToken)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var receiver = new VolumeReceiver(to, options);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var serve = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var client = await listener.AcceptTcpClientAsync(stop.Token);
                client.NoDelay = true;
                await receiver.ServeAsync(client.GetStream(), stop.Token);
            }
        }, stop.Token);
        var marks = new Dictionary<MoveStep, long>();
        var hooks = new MoveHooks
        {
            StepStarting = async (step, _) =>
            {
                if (step == MoveStep.Freeze)
                {
                    await Sh($"btrfs filesystem sync '{to.Root}'");
                }

                marks[step] = Stopwatch.GetTimestamp();
            },
        };
        var start = Stopwatch.GetTimestamp();
        await new VolumeMove(from, new VolumeMoveOptions { CatchUpRounds = 0 }).MoveAsync(volume, async ct =>
        {
            var c = new TcpClient { NoDelay = true };
            await c.ConnectAsync((IPEndPoint)listener.LocalEndpoint, ct);
            return c.GetStream();
        }, hooks, null, cancellationToken);
        var total = Stopwatch.GetElapsedTime(start);
        await stop.CancelAsync();
        try
        {
            await serve;
        }
        catch (OperationCanceledException)
        {
        }

        return (Between(marks, MoveStep.FullSend, MoveStep.Freeze), total);
    }

    private static TimeSpan Between(Dictionary<MoveStep, long> marks, MoveStep from, MoveStep to) =>
        Stopwatch.GetElapsedTime(marks[from], marks[to]);

    private static async Task<TimeSpan> TimeAsync(Func<Task> action)
    {
        var t = Stopwatch.GetTimestamp();
        await action();
        return Stopwatch.GetElapsedTime(t);
    }

    /// <summary>Incompressible data from a fast PRNG, written in 4 MiB unbuffered writes and flushed to disk once.</summary>
    private static void WriteRandom(string path, int mib, int seed)
    {
        var rng = new Random(seed);
        var buffer = new byte[4 << 20];
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        for (var left = mib << 20; left > 0; left -= buffer.Length)
        {
            var n = Math.Min(left, buffer.Length);
            rng.NextBytes(buffer.AsSpan(0, n));
            f.Write(buffer, 0, n);
        }

        f.Flush(flushToDisk: true);
    }

    internal static async Task Sh(string script)
    {
        using var p = Process.Start(new ProcessStartInfo("bash", ["-c", "set -o pipefail; " + script]) { RedirectStandardError = true })!;
        var err = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"'{script}' exited {p.ExitCode}: {err}");
        }
    }

    /// <summary>A sparse loop-mounted Btrfs filesystem under /tmp, removed on dispose.</summary>
    private sealed class BenchFs : IAsyncDisposable
    {
        private BenchFs(string image, string mount)
        {
            Image = image;
            Mount = mount;
        }

        public string Image { get; }

        public string Mount { get; }

        public static async Task<BenchFs> CreateAsync(long size)
        {
            var id = Guid.NewGuid().ToString("N");
            var fs = new BenchFs(Path.Combine(Path.GetTempPath(), $"dcs-bench-{id}.img"), Path.Combine(Path.GetTempPath(), $"dcs-bench-mnt-{id}"));
            Directory.CreateDirectory(fs.Mount);
            try
            {
                await Sh($"truncate -s {size.ToString(CultureInfo.InvariantCulture)} '{fs.Image}' && mkfs.btrfs -q -f '{fs.Image}' && mount -o loop '{fs.Image}' '{fs.Mount}'");
            }
            catch
            {
                await fs.DisposeAsync();
                throw;
            }

            return fs;
        }

        public async ValueTask DisposeAsync()
        {
            await Sh($"if mountpoint -q '{Mount}'; then umount '{Mount}' || umount -l '{Mount}'; fi; rmdir '{Mount}' 2>/dev/null || true; rm -f '{Image}'");
        }
    }
}
