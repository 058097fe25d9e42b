namespace DeCloud.Billing.Metering;

/// <summary>How hourly charges are split and when SLA credits apply.</summary>
public sealed class MeteringOptions
{
    /// <summary>The platform's share of each hourly charge (default 0.15), rounded down; the node operator gets the rest.</summary>
    public decimal PlatformShare { get; set; } = 0.15m;

    /// <summary>The relay operator's share of each hourly charge when the VM's traffic is relayed (default 0.10), rounded down.</summary>
    public decimal RelayShare { get; set; } = 0.10m;

    /// <summary>Uptime (0..1) under which a billing period earns the user an SLA credit (default 0.99).</summary>
    public decimal SlaUptimeThreshold { get; set; } = 0.99m;

    /// <summary>The part of the period's charges credited back, taken from the operator's earnings (default 0.10).</summary>
    public decimal SlaCreditShare { get; set; } = 0.10m;

    /// <summary>Most records accepted in one ingest call (default 100,000).</summary>
    public int MaxBatchSize { get; set; } = 100_000;

    /// <summary>Throws <see cref="BillingValidationException"/> naming the first bad property.</summary>
    public void Validate()
    {
        Fraction(PlatformShare, "Metering.PlatformShare");
        Fraction(RelayShare, "Metering.RelayShare");
        Fraction(SlaUptimeThreshold, "Metering.SlaUptimeThreshold");
        Fraction(SlaCreditShare, "Metering.SlaCreditShare");
        if (PlatformShare + RelayShare > 1m)
        {
            throw Check.Fail("Metering.RelayShare", $"PlatformShare {PlatformShare} + RelayShare {RelayShare} exceed 1; the node operator's part would be negative.");
        }

        if (MaxBatchSize is < 1 or > 10_000_000)
        {
            throw Check.Fail("Metering.MaxBatchSize", $"{MaxBatchSize} is out of range 1..10,000,000.");
        }

        static void Fraction(decimal value, string name)
        {
            if (value is < 0m or > 1m)
            {
                throw Check.Fail(name, $"{value} is out of range; expected a fraction 0..1.");
            }
        }
    }
}
