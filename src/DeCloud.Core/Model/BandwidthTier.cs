namespace DeCloud.Core.Model;

/// <summary>A VM's network bandwidth tier.</summary>
public enum BandwidthTier
{
    /// <summary>10 Mbit/s by default.</summary>
    Basic = 0,

    /// <summary>50 Mbit/s by default.</summary>
    Standard = 1,

    /// <summary>200 Mbit/s by default.</summary>
    Performance = 2,

    /// <summary>No cap.</summary>
    Unmetered = 3,
}

/// <summary>What a bandwidth tier gives and costs.</summary>
/// <param name="Tier">The tier.</param>
/// <param name="MegabitsPerSecond">The cap in Mbit/s (10^6 bit/s), or null for no cap.</param>
/// <param name="HourlyRateUsdc">The flat hourly rate in USDC added to a VM's price.</param>
/// <param name="PriceMultiplier">The multiplier applied to the VM's resource cost.</param>
public sealed record BandwidthTierSpec(BandwidthTier Tier, int? MegabitsPerSecond, decimal HourlyRateUsdc, decimal PriceMultiplier)
{
    /// <summary>The cap in bytes per second, or null for no cap.</summary>
    public long? BytesPerSecond => MegabitsPerSecond is { } m ? m * 1_000_000L / 8 : null;
}

/// <summary>
/// The configurable table of bandwidth tiers. Defaults: Basic 10 Mbit/s (0.002 USDC/h, x0.8),
/// Standard 50 Mbit/s (0.005 USDC/h, x1.0), Performance 200 Mbit/s (0.010 USDC/h, x1.2),
/// Unmetered (0.020 USDC/h, x1.5).
/// </summary>
public sealed class BandwidthTierCatalog
{
    private readonly BandwidthTierSpec[] _specs;

    /// <summary>Creates a catalog; every tier must be given exactly once.</summary>
    public BandwidthTierCatalog(IEnumerable<BandwidthTierSpec> specs)
    {
        ArgumentNullException.ThrowIfNull(specs);
        _specs = new BandwidthTierSpec[4];
        foreach (var spec in specs)
        {
            ArgumentNullException.ThrowIfNull(spec);
            if (!IsDefined(spec.Tier))
            {
                throw Validate.Fail("bandwidthTier", $"'{spec.Tier}' is not a bandwidth tier.");
            }

            if (_specs[(int)spec.Tier] is not null)
            {
                throw Validate.Fail("bandwidthTier", $"tier {spec.Tier} is given twice.");
            }

            if (spec.MegabitsPerSecond is <= 0 || (spec.MegabitsPerSecond is null && spec.Tier != BandwidthTier.Unmetered))
            {
                throw Validate.Fail($"bandwidthTiers.{spec.Tier}.megabitsPerSecond", $"{spec.MegabitsPerSecond} must be a positive cap (only Unmetered has none).");
            }

            if (spec.HourlyRateUsdc < 0 || spec.HourlyRateUsdc > 1000)
            {
                throw Validate.Fail($"bandwidthTiers.{spec.Tier}.hourlyRateUsdc", $"{spec.HourlyRateUsdc} is out of range 0..1000.");
            }

            if (spec.PriceMultiplier <= 0 || spec.PriceMultiplier > 100)
            {
                throw Validate.Fail($"bandwidthTiers.{spec.Tier}.priceMultiplier", $"{spec.PriceMultiplier} is out of range (0, 100].");
            }

            _specs[(int)spec.Tier] = spec;
        }

        for (var i = 0; i < _specs.Length; i++)
        {
            if (_specs[i] is null)
            {
                throw Validate.Fail("bandwidthTiers", $"tier {(BandwidthTier)i} is missing.");
            }
        }
    }

    /// <summary>The default table.</summary>
    public static BandwidthTierCatalog Default { get; } = new(
    [
        new BandwidthTierSpec(BandwidthTier.Basic, 10, 0.002m, 0.8m),
        new BandwidthTierSpec(BandwidthTier.Standard, 50, 0.005m, 1.0m),
        new BandwidthTierSpec(BandwidthTier.Performance, 200, 0.010m, 1.2m),
        new BandwidthTierSpec(BandwidthTier.Unmetered, null, 0.020m, 1.5m),
    ]);

    /// <summary>The spec of <paramref name="tier"/>.</summary>
    public BandwidthTierSpec this[BandwidthTier tier] =>
        IsDefined(tier) ? _specs[(int)tier] : throw Validate.Fail("bandwidthTier", $"'{tier}' is not a bandwidth tier; expected Basic, Standard, Performance or Unmetered.");

    /// <summary>All specs in tier order.</summary>
    public IReadOnlyList<BandwidthTierSpec> All => _specs;

    /// <summary>True when <paramref name="tier"/> is a defined tier.</summary>
    public static bool IsDefined(BandwidthTier tier) => tier is >= BandwidthTier.Basic and <= BandwidthTier.Unmetered;

    /// <summary>Parses a tier name (case-insensitive); throws <see cref="DeCloudValidationException"/>.</summary>
    public static BandwidthTier Parse(string? s, string field = "bandwidthTier") =>
        Enum.TryParse<BandwidthTier>(s, ignoreCase: true, out var t) && IsDefined(t) && !int.TryParse(s, out _)
            ? t
            : throw Validate.Fail(field, $"'{s}' is not a bandwidth tier; expected Basic, Standard, Performance or Unmetered.");
}
