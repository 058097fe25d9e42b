using System.Globalization;
using DeCloud.Agent.State;
using DeCloud.Protocol.V1;

namespace DeCloud.Agent.Control;

/// <summary>
/// Counts how long each VM runs on this node and adds its cumulative counters to every heartbeat
/// (<see cref="UsageReport"/>, for the orchestrator's billing). A VM's sequence grows only when its whole
/// running seconds change, and the counters of a sequence never change afterwards (they are kept in the
/// agent's SQLite facts), so (VM, node, sequence) is a deterministic record id: re-sending the last record
/// after a lost stream is a harmless duplicate. Time between two heartbeats counts when the VM was running
/// at both, at most <see cref="MaxGap"/>; time while the agent itself was down is not counted.
/// Traffic counters are not measured yet and report 0.
/// </summary>
internal sealed class UsageReporter(AgentState state, TimeProvider time)
{
    /// <summary>The most time one heartbeat gap adds.</summary>
    public static readonly TimeSpan MaxGap = TimeSpan.FromMinutes(10);

    private readonly Dictionary<string, Counter> _counters = [];
    private readonly Lock _gate = new();

    /// <summary>Adds the usage of the VMs listed in <paramref name="heartbeat"/> (by their power state) to it.</summary>
    public void Fill(Heartbeat heartbeat)
    {
        ArgumentNullException.ThrowIfNull(heartbeat);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var report = new UsageReport();
        lock (_gate)
        {
            foreach (var vm in heartbeat.Vms)
            {
                var running = vm.State == VmPowerState.Running;
                if (!_counters.TryGetValue(vm.VmId, out var c))
                {
                    c = Load(vm.VmId) ?? new Counter(-1, -1, now, 0);
                    _counters[vm.VmId] = c;
                }
                else if (c.WasRunning && running)
                {
                    c.RunningMs += Math.Clamp(now - c.LastTickMs, 0, (long)MaxGap.TotalMilliseconds);
                }

                c.WasRunning = running;
                c.LastTickMs = now;
                if (c.Sequence < 0 && !running)
                {
                    continue; // never ran here: nothing to bill
                }

                var seconds = c.RunningMs / 1000;
                if (c.Sequence < 0 || seconds != c.ReportedSeconds)
                {
                    c.Sequence++;
                    c.ReportedSeconds = seconds;
                    c.ObservedMs = now;
                }

                if (c.RunningMs != c.SavedMs)
                {
                    state.SetFact(Key(vm.VmId), c.ToString());
                    c.SavedMs = c.RunningMs;
                }

                report.Vms.Add(new UsageCounters
                {
                    VmId = vm.VmId,
                    Sequence = c.Sequence,
                    ObservedAtUnixMs = c.ObservedMs,
                    RunningSeconds = c.ReportedSeconds,
                });
            }
        }

        if (report.Vms.Count > 0)
        {
            heartbeat.Usage = report;
        }
    }

    private Counter? Load(string vmId)
    {
        var parts = state.GetFact(Key(vmId))?.Split(',');
        return parts is { Length: 4 }
            && long.TryParse(parts[0], CultureInfo.InvariantCulture, out var seq)
            && long.TryParse(parts[1], CultureInfo.InvariantCulture, out var reported)
            && long.TryParse(parts[2], CultureInfo.InvariantCulture, out var observed)
            && long.TryParse(parts[3], CultureInfo.InvariantCulture, out var ms)
            ? new Counter(seq, reported, observed, ms) { SavedMs = ms }
            : null;
    }

    private static string Key(string vmId) => "usage:" + vmId;

    private sealed class Counter(long sequence, long reportedSeconds, long observedMs, long runningMs)
    {
        public long Sequence { get; set; } = sequence;

        public long ReportedSeconds { get; set; } = reportedSeconds;

        public long ObservedMs { get; set; } = observedMs;

        public long RunningMs { get; set; } = runningMs;

        public long SavedMs { get; set; } = -1;

        public long LastTickMs { get; set; }

        public bool WasRunning { get; set; }

        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Sequence},{ReportedSeconds},{ObservedMs},{RunningMs}");
    }
}
