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
/// (prefix <c>dcs-bench-</c>) stand for two hosts; they are removed at the end. Moves of 32 MiB run first,
/// untimed, so the timed moves run warm (tier-1 JIT) code, as on a host daemon that has moved before.
/// <para>
/// Three rounds; each runs the raw pipe, the default move (live resume, no staging) and the durably
/// staged move, in alternating order (forward, backward, forward), so no configuration always follows
/// the same one. Before every timed phase all dirty data is written back and deleted subvolumes are
/// cleaned (<c>sync -f</c>, <c>btrfs subvolume sync</c>), and every phase ends when what it received is on
/// disk, so no phase pays for the previous one's writeback. Each round's ratio compares with the same
/// round's raw pipe; the RESULT lines give medians and the range of the three rounds.
/// </para>
/// </summary>
public sealed class StorageQuickArea : IQuickArea
{
    private const int DataMiB = 500;
    private const int DeltaMiB = 10;
    private const int Rounds = 3;

    public string Name => "storage";

    public async Task RunAsync(QuickReport report, CancellationToken cancellationToken)
    {
        var free = new DriveInfo(Path.GetTempPath()).AvailableFreeSpace;
        if (free < 7L << 30)
        {
            report.Note($"skipped: needs 7 GiB free under {Path.GetTempPath()}, has {free >> 20} MiB");
            return;
        }

        var wall = Stopwatch.GetTimestamp();
        var loadBefore = LoadAverage();
        await using var a = await BenchFs.CreateAsync(3L << 30);
        await using var b = await BenchFs.CreateAsync(3L << 30);
        var here = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = a.Mount });
        var there = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = b.Mount });
        var mounts = new[] { a.Mount, b.Mount };

        var warm = await here.CreateAsync("warm", cancellationToken);
        WriteRandom(Path.Combine(warm.Path, "disk.raw"), 32, 9);
        await MoveAsync(here, there, "warm", staged: false, catchUp: false, mounts, cancellationToken);
        await MoveAsync(there, here, "warm", staged: true, catchUp: false, mounts, cancellationToken);
        await here.DeleteAsync("warm", cancellationToken);

        var vol = await here.CreateAsync("bench", cancellationToken);
        WriteRandom(Path.Combine(vol.Path, "disk.raw"), DataMiB, 1);

        var raw = new List<(TimeSpan Full, TimeSpan Delta, double FullCpu)>();
        var moves = new List<MoveTimes>();
        var staged = new List<MoveTimes>();
        string[] phases = ["raw", "move", "staged"];
        for (var round = 0; round < Rounds; round++)
        {
            foreach (var phase in round % 2 == 0 ? phases : Enumerable.Reverse(phases))
            {
                await SettleAsync(mounts);
                switch (phase)
                {
                    case "raw":
                        raw.Add(await RawPipeAsync(here, there, mounts, cancellationToken));
                        break;
                    default:
                        var times = await MoveAsync(here, there, "bench", staged: phase == "staged", catchUp: phase == "move", mounts, cancellationToken);
                        (phase == "staged" ? staged : moves).Add(times);
                        (here, there) = (there, here);
                        break;
                }
            }
        }

        await SettleAsync(mounts);
        var load = $"{loadBefore}->{LoadAverage()}";
        static double Rate(TimeSpan t) => DataMiB / t.TotalSeconds;
        void Full(string config, List<MoveTimes> runs)
        {
            var ratios = runs.Select((m, i) => raw[i].Full / m.FullSend).ToList();
            report.Result(("config", config),
                ("rounds", Rounds),
                ("raw_pipe_mib_per_s", Median(raw.Select(r => Rate(r.Full)))),
                ("move_full_send_mib_per_s", Median(runs.Select(m => Rate(m.FullSend)))),
                ("ratio_vs_raw_pipe", Median(ratios)),
                ("ratio_min", ratios.Min()),
                ("ratio_max", ratios.Max()),
                ("move_end_to_end_mib_per_s", Median(runs.Select(m => Rate(m.Total)))),
                ("verify_ms", Median(runs.Select(m => m.Verify.TotalMilliseconds))),
                ("raw_pipe_cpu_s", Median(raw.Select(r => r.FullCpu))),
                ("move_full_send_cpu_s", Median(runs.Select(m => m.FullSendCpu))),
                ("stream_bytes", runs[^1].StreamBytes),
                ("load_avg", load));
        }

        Full("full_500mib", moves);
        Full("full_500mib_staged", staged);
        var deltaRatios = moves.Select((m, i) => raw[i].Delta / m.CatchUp).ToList();
        report.Result(("config", "incremental_10mib"),
            ("rounds", Rounds),
            ("raw_pipe_ms", Median(raw.Select(r => r.Delta.TotalMilliseconds))),
            ("move_catch_up_ms", Median(moves.Select(m => m.CatchUp.TotalMilliseconds))),
            ("ratio_vs_raw_pipe", Median(deltaRatios)),
            ("ratio_min", deltaRatios.Min()),
            ("ratio_max", deltaRatios.Max()));
        report.Note($"wall {Stopwatch.GetElapsedTime(wall).TotalSeconds:F1} s, load average {load}");
    }

    private sealed record MoveTimes(TimeSpan FullSend, TimeSpan CatchUp, TimeSpan Verify, TimeSpan Total, long StreamBytes, double FullSendCpu);

    /// <summary>
    /// CPU seconds used so far by this process and by its reaped children (<c>btrfs send/receive</c>, and the
    /// shell of the raw pipe with its children), from <c>/proc/self/stat</c>: under load, wall time measures the
    /// machine, CPU time still measures the work. Kernel threads (writeback, loop device) count for neither.
    /// </summary>
    private static (double Self, double Children) Cpu()
    {
        var stat = File.ReadAllText("/proc/self/stat");
        var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // Fields 14-17 (utime, stime, cutime, cstime) are 11-14 after the command name, in clock ticks (100 per second).
        double T(int i) => long.Parse(f[i], CultureInfo.InvariantCulture) / 100.0;
        return (T(11) + T(12), T(13) + T(14));
    }

    /// <summary>The raw pipe from wherever the volume is to the other filesystem: a full send, then 10 MiB more incrementally; both timed until on disk.</summary>
    private static async Task<(TimeSpan Full, TimeSpan Delta, double FullCpu)> RawPipeAsync(BtrfsVolumes from, BtrfsVolumes to, string[] mounts, CancellationToken cancellationToken)
    {
        await from.SnapshotAsync("bench", "bench@raw", cancellationToken: cancellationToken);
        await SettleAsync(mounts);
        var cpu = Cpu();
        var full = await TimeAsync(() => Sh($"btrfs send -q '{from.Root}/bench@raw' | btrfs receive -q '{to.Root}' && btrfs filesystem sync '{to.Root}'"));
        var after = Cpu();
        var fullCpu = after.Self - cpu.Self + after.Children - cpu.Children;
        WriteRandom(Path.Combine(from.Root, "bench", "delta.bin"), DeltaMiB, 2);
        await from.SnapshotAsync("bench", "bench@raw2", cancellationToken: cancellationToken);
        await SettleAsync(mounts);
        var delta = await TimeAsync(() => Sh($"btrfs send -q -p '{from.Root}/bench@raw' '{from.Root}/bench@raw2' | btrfs receive -q '{to.Root}' && btrfs filesystem sync '{to.Root}'"));
        foreach (var v in new[] { to, from })
        {
            await v.DeleteAsync("bench@raw2", cancellationToken);
            await v.DeleteAsync("bench@raw", cancellationToken);
        }

        return (full, delta, fullCpu);
    }

    /// <summary>
    /// Moves <paramref name="volume"/> over loopback TCP, with one catch-up of 10 MiB of new data or none, and
    /// times the full send until on disk, the catch-up, the verification and the whole move.
    /// </summary>
    private static async Task<MoveTimes> MoveAsync(BtrfsVolumes from, BtrfsVolumes to, string volume, bool staged, bool catchUp, string[] mounts, CancellationToken cancellationToken)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        await using var receiver = new VolumeReceiver(to, new VolumeReceiverOptions { StageChunks = staged });
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
        var cpuMarks = new Dictionary<MoveStep, (double Self, double Children)>();
        var hooks = new MoveHooks
        {
            StepStarting = async (step, _) =>
            {
                if (step is MoveStep.CatchUp or MoveStep.Freeze)
                {
                    // The stream just received counts until it is on disk, as for the raw pipe.
                    await Sh($"btrfs filesystem sync '{to.Root}'");
                }

                marks[step] = Stopwatch.GetTimestamp();
                cpuMarks[step] = Cpu();
                if (step == MoveStep.CatchUp)
                {
                    WriteRandom(Path.Combine(from.Root, volume, "delta.bin"), DeltaMiB, 3);
                    await SettleAsync(mounts);
                    marks[step] = Stopwatch.GetTimestamp();
                }
            },
        };
        var start = Stopwatch.GetTimestamp();
        var result = await new VolumeMove(from, new VolumeMoveOptions { CatchUpRounds = catchUp ? 1 : 0 }).MoveAsync(volume, async ct =>
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

        return new MoveTimes(
            Between(marks, MoveStep.FullSend, catchUp ? MoveStep.CatchUp : MoveStep.Freeze),
            catchUp ? Between(marks, MoveStep.CatchUp, MoveStep.Freeze) : TimeSpan.Zero,
            Between(marks, MoveStep.Verify, MoveStep.CutOver),
            total,
            result.StreamBytes,
            CpuBetween(cpuMarks[MoveStep.FullSend], cpuMarks[catchUp ? MoveStep.CatchUp : MoveStep.Freeze]));
    }

    /// <summary>
    /// Writes back the dirty data of both filesystems (<c>sync -f</c>: theirs only, not the whole shared machine's)
    /// and waits until deleted subvolumes are cleaned on both, then writes back what the cleaning dirtied.
    /// </summary>
    private static Task SettleAsync(string[] mounts)
    {
        var quoted = string.Join(' ', mounts.Select(m => $"'{m}'"));
        return Sh($"sync -f {quoted} && " + string.Join(" && ", mounts.Select(m => $"btrfs subvolume sync '{m}'")) + $" && sync -f {quoted}");
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private static double CpuBetween((double Self, double Children) from, (double Self, double Children) to) =>
        to.Self - from.Self + to.Children - from.Children;

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

    /// <summary>
    /// A sparse loop-mounted Btrfs filesystem under /tmp, removed on dispose. Mounted with <c>commit=1</c>: the
    /// cleaner that frees deleted subvolumes is woken at each periodic commit, so with the default 30 s every
    /// settle after a deletion waited up to 30 s (the whole run took 308 s); every timed phase ends with its own
    /// <c>btrfs filesystem sync</c> anyway.
    /// </summary>
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
                await Sh($"truncate -s {size.ToString(CultureInfo.InvariantCulture)} '{fs.Image}' && mkfs.btrfs -q -f '{fs.Image}' && mount -o loop,commit=1 '{fs.Image}' '{fs.Mount}'");
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
