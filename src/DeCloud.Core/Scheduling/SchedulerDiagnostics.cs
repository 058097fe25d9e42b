using System.Diagnostics.Metrics;
using DeCloud.Core.Model;
using Microsoft.Extensions.Logging;

namespace DeCloud.Core.Scheduling;

/// <summary>Scheduler metrics: <c>decloud.scheduler.placements</c> (by mode or refusal) and <c>decloud.scheduler.holds.expired</c>.</summary>
internal sealed class SchedulerMetrics
{
    public const string MeterName = "DeCloud.Core.Scheduling";
    private static readonly Meter SharedMeter = new(MeterName);
    private static readonly KeyValuePair<string, object?> DryRun = new("decloud.outcome", "dry_run");
    private static readonly KeyValuePair<string, object?> Held = new("decloud.outcome", "held");
    private static readonly KeyValuePair<string, object?> Committed = new("decloud.outcome", "committed");
    private static readonly KeyValuePair<string, object?> RefusedTag = new("decloud.outcome", "refused");
    private readonly Counter<long> _placements;
    private readonly Counter<long> _expired;

    public SchedulerMetrics(IMeterFactory? meterFactory)
    {
        var meter = meterFactory?.Create(MeterName) ?? SharedMeter;
        _placements = meter.CreateCounter<long>("decloud.scheduler.placements", "{placement}", "Placement decisions by outcome.");
        _expired = meter.CreateCounter<long>("decloud.scheduler.holds.expired", "{hold}", "Holds that expired and returned their resources.");
    }

    public void Placed(PlacementMode mode)
    {
        if (_placements.Enabled)
        {
            _placements.Add(1, mode switch { PlacementMode.DryRun => DryRun, PlacementMode.Hold => Held, _ => Committed });
        }
    }

    public void Refused()
    {
        if (_placements.Enabled)
        {
            _placements.Add(1, RefusedTag);
        }
    }

    public void Expired(int count) => _expired.Add(count);
}

internal static partial class Log
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "Refused VM {Vm}: {Summary}")]
    public static partial void Refused(ILogger logger, VmId vm, string summary);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Debug, Message = "Refused a gang of {Members} at member {Member}: {Summary}")]
    public static partial void GangRefused(ILogger logger, int members, int member, string summary);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "{Count} holds expired and returned their resources")]
    public static partial void HoldsExpired(ILogger logger, int count);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "Proposed new homes for {Count} VMs of node {Node}")]
    public static partial void Rescheduled(ILogger logger, NodeId node, int count);
}
