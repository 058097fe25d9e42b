namespace DeCloud.Core.Model;

/// <summary>
/// How much a VM's CPU may be overcommitted on its node: Dedicated 1:1, Standard 1.5:1,
/// Balanced 2:1, Burstable 4:1. Memory, storage and GPUs are never overcommitted.
/// </summary>
public enum QualityTier
{
    /// <summary>1:1, a requested point is a whole point of the node.</summary>
    Dedicated = 0,

    /// <summary>1.5:1.</summary>
    Standard = 1,

    /// <summary>2:1.</summary>
    Balanced = 2,

    /// <summary>4:1.</summary>
    Burstable = 3,
}

/// <summary>Exact integer CPU accounting per <see cref="QualityTier"/>.</summary>
public static class QualityTiers
{
    /// <summary>A node point is 12 twelfths; a requested point of a tier costs <see cref="TwelfthsPerPoint"/>.</summary>
    public const int TwelfthsPerNodePoint = 12;

    /// <summary>All tiers, in declaration order.</summary>
    public static IReadOnlyList<QualityTier> All { get; } =
        [QualityTier.Dedicated, QualityTier.Standard, QualityTier.Balanced, QualityTier.Burstable];

    /// <summary>
    /// The node capacity, in twelfths of a point, that one requested point of <paramref name="tier"/>
    /// consumes: Dedicated 12, Standard 8, Balanced 6, Burstable 3 (12 divided by the overcommit ratio).
    /// </summary>
    public static int TwelfthsPerPoint(QualityTier tier) => tier switch
    {
        QualityTier.Dedicated => 12,
        QualityTier.Standard => 8,
        QualityTier.Balanced => 6,
        QualityTier.Burstable => 3,
        _ => throw Validate.Fail("qualityTier", $"'{tier}' is not a quality tier; expected Dedicated, Standard, Balanced or Burstable."),
    };

    /// <summary>The overcommit ratio (1, 1.5, 2, 4).</summary>
    public static decimal OvercommitRatio(QualityTier tier) => 12m / TwelfthsPerPoint(tier);

    /// <summary>True when <paramref name="tier"/> is a defined tier.</summary>
    public static bool IsDefined(QualityTier tier) => tier is >= QualityTier.Dedicated and <= QualityTier.Burstable;

    /// <summary>Parses a tier name (case-insensitive); throws <see cref="DeCloudValidationException"/>.</summary>
    public static QualityTier Parse(string? s, string field = "qualityTier") =>
        Enum.TryParse<QualityTier>(s, ignoreCase: true, out var t) && IsDefined(t) && !int.TryParse(s, out _)
            ? t
            : throw Validate.Fail(field, $"'{s}' is not a quality tier; expected Dedicated, Standard, Balanced or Burstable.");
}
