using DeCloud.Core.Model;

namespace DeCloud.Billing.Pricing;

/// <summary>Platform pricing: floors, defaults and the bandwidth tier table.</summary>
public sealed class PricingOptions
{
    /// <summary>The lowest rate an operator may charge; operator prices below are raised to it.</summary>
    public ResourceRates Floors { get; set; } = ResourceRates.DefaultFloors;

    /// <summary>The rates used before a VM is placed, and for nodes that set no prices.</summary>
    public ResourceRates Defaults { get; set; } = ResourceRates.DefaultRates;

    /// <summary>Bandwidth tiers with their hourly rates and price multipliers.</summary>
    public BandwidthTierCatalog BandwidthTiers { get; set; } = BandwidthTierCatalog.Default;

    /// <summary>Throws <see cref="BillingValidationException"/> naming the first bad property.</summary>
    public void Validate()
    {
        if (Floors is null)
        {
            throw Check.Fail("Pricing.Floors", "must be set.");
        }

        if (Defaults is null)
        {
            throw Check.Fail("Pricing.Defaults", "must be set.");
        }

        if (BandwidthTiers is null)
        {
            throw Check.Fail("Pricing.BandwidthTiers", "must be set.");
        }

        Floors.Validate("Pricing.Floors");
        Defaults.Validate("Pricing.Defaults");
        if (Defaults.AtLeast(Floors) != Defaults)
        {
            throw Check.Fail("Pricing.Defaults", $"every default rate must be at least its floor ({Floors}).");
        }
    }
}
