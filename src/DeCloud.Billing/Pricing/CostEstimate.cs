using DeCloud.Core.Model;

namespace DeCloud.Billing.Pricing;

/// <summary>One line of an itemized estimate.</summary>
/// <param name="Item">What is priced: <c>cpu</c>, <c>memory</c>, <c>storage</c>, <c>gpu</c>, <c>bandwidth-multiplier</c>, <c>bandwidth</c>.</param>
/// <param name="Quantity">How much (points of CPU actually given, GiB, GPUs, or the multiplier).</param>
/// <param name="UnitRateUsdc">The hourly rate per unit in USDC (zero for the multiplier line).</param>
/// <param name="HourlyUsdc">What the line adds per hour in USDC (exact, not rounded).</param>
public sealed record CostLine(string Item, decimal Quantity, decimal UnitRateUsdc, decimal HourlyUsdc);

/// <summary>
/// An itemized hourly price: (resource cost x bandwidth multiplier) + bandwidth rate. Exact in
/// <see cref="decimal"/>; rounding to micro-USDC happens only when an amount is posted.
/// </summary>
public sealed record CostEstimate
{
    internal CostEstimate(IReadOnlyList<CostLine> lines, decimal resourceHourlyUsdc, decimal multiplier, decimal bandwidthHourlyUsdc,
        QualityTier quality, BandwidthTier bandwidth)
    {
        Lines = lines;
        ResourceHourlyUsdc = resourceHourlyUsdc;
        BandwidthMultiplier = multiplier;
        BandwidthHourlyUsdc = bandwidthHourlyUsdc;
        HourlyUsdc = resourceHourlyUsdc * multiplier + bandwidthHourlyUsdc;
        QualityTier = quality;
        BandwidthTier = bandwidth;
    }

    /// <summary>The lines: one per resource, the multiplier, and the bandwidth rate.</summary>
    public IReadOnlyList<CostLine> Lines { get; }

    /// <summary>CPU + memory + storage + GPU per hour, before the multiplier.</summary>
    public decimal ResourceHourlyUsdc { get; }

    /// <summary>The bandwidth tier's price multiplier.</summary>
    public decimal BandwidthMultiplier { get; }

    /// <summary>The bandwidth tier's flat hourly rate.</summary>
    public decimal BandwidthHourlyUsdc { get; }

    /// <summary>The total hourly rate in USDC (exact).</summary>
    public decimal HourlyUsdc { get; }

    /// <summary>The quality tier priced.</summary>
    public QualityTier QualityTier { get; }

    /// <summary>The bandwidth tier priced.</summary>
    public BandwidthTier BandwidthTier { get; }

    /// <summary>The cost of running for <paramref name="hours"/> hours, rounded down to micro-USDC once.</summary>
    public long MicroUsdcFor(decimal hours) =>
        hours < 0 ? throw Check.Fail("hours", $"{hours} must not be negative.") : MicroUsdc.FloorFromUsdc(HourlyUsdc * hours);
}
