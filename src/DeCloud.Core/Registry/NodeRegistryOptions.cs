using DeCloud.Core.Model;

namespace DeCloud.Core.Registry;

/// <summary>Heartbeat, health and reputation settings of <see cref="NodeRegistry"/>.</summary>
public sealed class NodeRegistryOptions
{
    /// <summary>How often agents send heartbeats. Default 15 s.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>A node without a heartbeat for longer than this is offline. Default 2 minutes.</summary>
    public TimeSpan OfflineAfter { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How often <see cref="NodeHealthMonitor"/> checks. Default 5 s.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The reputation window in UTC days, today included. Default 30.</summary>
    public int ReputationWindowDays { get; set; } = 30;

    /// <summary>How many nodes <see cref="NodeRegistry.GetFeaturedAsync"/> returns. Default 10.</summary>
    public int FeaturedCount { get; set; } = 10;

    /// <summary>Featured nodes need an uptime above this. Default 0.95.</summary>
    public double FeaturedMinUptime { get; set; } = 0.95;

    /// <summary>Benchmark score of one compute point. Default 1,000 (see <see cref="ComputePointNormalizer.Default"/>).</summary>
    public double BaselineScorePerPoint { get; set; } = 1000;

    /// <summary>Most heartbeats written in one transaction. Default 2,048.</summary>
    public int HeartbeatBatchSize { get; set; } = 2048;

    /// <summary>Throws <see cref="DeCloudValidationException"/> naming the first bad property.</summary>
    public void Validate()
    {
        Check(HeartbeatInterval > TimeSpan.Zero && HeartbeatInterval <= TimeSpan.FromHours(1), nameof(HeartbeatInterval), $"{HeartbeatInterval} must be positive and at most one hour.");
        Check(OfflineAfter >= HeartbeatInterval && OfflineAfter <= TimeSpan.FromDays(1), nameof(OfflineAfter), $"{OfflineAfter} must be at least HeartbeatInterval ({HeartbeatInterval}) and at most one day.");
        Check(CheckInterval > TimeSpan.Zero && CheckInterval <= OfflineAfter, nameof(CheckInterval), $"{CheckInterval} must be positive and at most OfflineAfter ({OfflineAfter}).");
        Check(ReputationWindowDays is >= 1 and <= 365, nameof(ReputationWindowDays), $"{ReputationWindowDays} must be 1..365.");
        Check(FeaturedCount is >= 1 and <= 1000, nameof(FeaturedCount), $"{FeaturedCount} must be 1..1000.");
        Check(FeaturedMinUptime is >= 0 and <= 1, nameof(FeaturedMinUptime), $"{FeaturedMinUptime} must be 0..1.");
        Check(BaselineScorePerPoint > 0 && double.IsFinite(BaselineScorePerPoint), nameof(BaselineScorePerPoint), $"{BaselineScorePerPoint} must be positive.");
        Check(HeartbeatBatchSize is >= 1 and <= 100_000, nameof(HeartbeatBatchSize), $"{HeartbeatBatchSize} must be 1..100000.");
    }

    private static void Check(bool ok, string property, string message)
    {
        if (!ok)
        {
            throw Model.Validate.Fail(nameof(NodeRegistryOptions) + "." + property, message);
        }
    }
}
