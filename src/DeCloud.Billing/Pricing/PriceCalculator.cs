using DeCloud.Core.Model;

namespace DeCloud.Billing.Pricing;

/// <summary>
/// Prices a VM: CPU is charged for the share of a point the quality tier actually gives (Dedicated a
/// whole point, Standard 2/3, Balanced 1/2, Burstable 1/4), memory per GiB, storage per GiB, GPUs each;
/// the sum is multiplied by the bandwidth tier's multiplier and its flat hourly rate is added.
/// </summary>
public sealed class PriceCalculator
{
    private readonly PricingOptions _options;

    /// <summary>Creates a calculator; the options are validated here.</summary>
    public PriceCalculator(PricingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>The platform's pricing.</summary>
    public PricingOptions Options => _options;

    /// <summary>An estimate at the platform's default rates (what a VM is quoted before placement).</summary>
    public CostEstimate EstimateWithDefaults(Resources resources, QualityTier quality, BandwidthTier bandwidth) =>
        Estimate(resources, quality, bandwidth, _options.Defaults);

    /// <summary>
    /// An itemized estimate at <paramref name="rates"/>, which are raised to the platform floors first.
    /// Throws <see cref="DeCloudValidationException"/> or <see cref="BillingValidationException"/> for bad input.
    /// </summary>
    public CostEstimate Estimate(Resources resources, QualityTier quality, BandwidthTier bandwidth, ResourceRates rates)
    {
        ArgumentNullException.ThrowIfNull(rates);
        resources.ValidateRequest("resources");
        var share = QualityTiers.TwelfthsPerPoint(quality) / (decimal)QualityTiers.TwelfthsPerNodePoint;
        var tier = _options.BandwidthTiers[bandwidth];
        var r = rates.Validate("rates").AtLeast(_options.Floors);

        var cpuPoints = resources.ComputePoints * share;
        var memoryGiB = resources.MemoryMiB / 1024m;
        var lines = new List<CostLine>(6)
        {
            new("cpu", cpuPoints, r.CpuPerPointHour, cpuPoints * r.CpuPerPointHour),
            new("memory", memoryGiB, r.MemoryPerGiBHour, memoryGiB * r.MemoryPerGiBHour),
            new("storage", resources.StorageGiB, r.StoragePerGiBHour, resources.StorageGiB * r.StoragePerGiBHour),
            new("gpu", resources.Gpus, r.GpuPerHour, resources.Gpus * r.GpuPerHour),
        };
        var resourceCost = lines[0].HourlyUsdc + lines[1].HourlyUsdc + lines[2].HourlyUsdc + lines[3].HourlyUsdc;
        lines.Add(new("bandwidth-multiplier", tier.PriceMultiplier, 0m, resourceCost * (tier.PriceMultiplier - 1m)));
        lines.Add(new("bandwidth", 1m, tier.HourlyRateUsdc, tier.HourlyRateUsdc));
        return new CostEstimate(lines, resourceCost, tier.PriceMultiplier, tier.HourlyRateUsdc, quality, bandwidth);
    }
}
