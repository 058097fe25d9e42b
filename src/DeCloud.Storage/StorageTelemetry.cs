using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace DeCloud.Storage;

/// <summary>The assembly's meter and activity source, named <c>DeCloud.Storage</c> for OpenTelemetry.</summary>
internal static class StorageTelemetry
{
    public const string Name = "DeCloud.Storage";

    public static readonly ActivitySource ActivitySource = new(Name);

    public static readonly Meter Meter = new(Name);

    public static readonly Counter<long> BtrfsCommands =
        Meter.CreateCounter<long>("decloud.storage.btrfs.commands", "{command}", "btrfs commands run, tagged with the subcommand and outcome");

    public static readonly Counter<long> MoveBytes =
        Meter.CreateCounter<long>("decloud.storage.move.bytes", "By", "send-stream bytes carried by moves (before wire compression)");

    public static readonly Counter<long> MoveWireBytes =
        Meter.CreateCounter<long>("decloud.storage.move.wire_bytes", "By", "chunk payload bytes written to the wire by moves");

    public static readonly Histogram<double> MoveDuration =
        Meter.CreateHistogram<double>("decloud.storage.move.duration", "s", "duration of whole moves, tagged with the outcome");

    public static readonly Counter<long> SnapshotsPruned =
        Meter.CreateCounter<long>("decloud.storage.backup.pruned", "{snapshot}", "snapshots deleted by retention");
}
