using DeCloud.Billing.Chain;
using DeCloud.Billing.Metering;
using DeCloud.Billing.Pricing;

namespace DeCloud.Billing;

/// <summary>Everything Billing needs to be configured with.</summary>
public sealed class BillingOptions
{
    /// <summary>The SQLite file of the ledger and billing tables (used when no <c>SqliteDatabase</c> is registered).</summary>
    public string DatabasePath { get; set; } = "decloud-billing.db";

    /// <summary>Floors, defaults and bandwidth tiers.</summary>
    public PricingOptions Pricing { get; set; } = new();

    /// <summary>Revenue split and SLA credits.</summary>
    public MeteringOptions Metering { get; set; } = new();

    /// <summary>The chain for deposits and payouts, or null to run without one.</summary>
    public ChainOptions? Chain { get; set; }

    /// <summary>Throws <see cref="BillingValidationException"/> naming the first bad property.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DatabasePath))
        {
            throw Check.Fail("DatabasePath", "must be a file path.");
        }

        (Pricing ?? throw Check.Fail("Pricing", "must be set.")).Validate();
        (Metering ?? throw Check.Fail("Metering", "must be set.")).Validate();
        Chain?.Validate();
    }
}
