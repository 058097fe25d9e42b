using DeCloud.Billing.Metering;
using DeCloud.Core.Model;
using DeCloud.Protocol.V1;
using Microsoft.Extensions.Logging;

namespace DeCloud.Orchestrator.Billing;

/// <summary>
/// Turns a heartbeat's <see cref="UsageReport"/> into DeCloud.Billing <see cref="UsageRecord"/>s (the id is
/// deterministic: VM, node, sequence) and ingests them; ingest is idempotent, so a re-sent report is free.
/// The VM's node is the heartbeat's node: an agent cannot report usage in another node's name.
/// </summary>
internal sealed class UsageIngest(UsageMeter meter, BillingHostMetrics metrics, ILogger<UsageIngest> logger) : IUsageSink
{
    /// <summary>The most VM counters one heartbeat may carry.</summary>
    public const int MaxVmsPerReport = 10_000;

    private static readonly long MaxUnixMs = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();

    public string? OnHeartbeat(NodeId node, Heartbeat heartbeat)
    {
        ArgumentNullException.ThrowIfNull(heartbeat);
        if (heartbeat.Usage is not { Vms.Count: > 0 } report)
        {
            return null;
        }

        if (report.Vms.Count > MaxVmsPerReport)
        {
            return $"usage report has {report.Vms.Count} VMs; at most {MaxVmsPerReport}.";
        }

        var records = new List<UsageRecord>(report.Vms.Count);
        foreach (var u in report.Vms)
        {
            if (!VmId.TryParse(u.VmId, null, out var vm))
            {
                return $"usage report: '{Cut(u.VmId)}' is not a VM id.";
            }

            if (u.ObservedAtUnixMs < 0 || u.ObservedAtUnixMs > MaxUnixMs)
            {
                return $"usage report: observed_at_unix_ms {u.ObservedAtUnixMs} of VM {vm} is not a time.";
            }

            records.Add(new UsageRecord(vm, node, u.Sequence, DateTimeOffset.FromUnixTimeMilliseconds(u.ObservedAtUnixMs),
                u.RunningSeconds, u.RelayedBytes, u.TotalBytes));
        }

        var result = meter.Ingest(records);
        metrics.UsageRecords.Add(result.Accepted, new KeyValuePair<string, object?>("outcome", "accepted"));
        metrics.UsageRecords.Add(result.Duplicates, new KeyValuePair<string, object?>("outcome", "duplicate"));
        metrics.UsageRecords.Add(result.Rejected + result.Conflicts, new KeyValuePair<string, object?>("outcome", "rejected"));
        if (result.Rejected + result.Conflicts > 0 || result.Accepted > 0)
        {
            Log.UsageIngested(logger, node.Value, result.Accepted, result.Duplicates, result.Rejected, result.Conflicts, string.Join(" ", result.Problems));
        }

        return null;
    }

    private static string Cut(string s) => s.Length <= 40 ? s : s[..40] + "...";
}
