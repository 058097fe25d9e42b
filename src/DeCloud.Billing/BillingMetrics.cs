using System.Diagnostics.Metrics;

namespace DeCloud.Billing;

/// <summary>The meter and instruments of DeCloud.Billing (<c>decloud.billing.*</c>).</summary>
internal static class BillingMetrics
{
    public static readonly Meter Meter = new("DeCloud.Billing");

    public static readonly Counter<long> RecordsIngested = Meter.CreateCounter<long>(
        "decloud.billing.usage_records", "{record}", "Usage records stored (duplicates excluded).");

    public static readonly Counter<long> Charged = Meter.CreateCounter<long>(
        "decloud.billing.charged", "uUSDC", "Micro-USDC charged to users for usage.");

    public static readonly Counter<long> DepositsCredited = Meter.CreateCounter<long>(
        "decloud.billing.deposits_credited", "uUSDC", "Micro-USDC credited from on-chain deposits.");

    public static readonly Counter<long> DepositsReversed = Meter.CreateCounter<long>(
        "decloud.billing.deposits_reversed", "uUSDC", "Micro-USDC reversed after a chain reorganization.");

    public static readonly Counter<long> PaidOut = Meter.CreateCounter<long>(
        "decloud.billing.paid_out", "uUSDC", "Micro-USDC sent to operators on chain.");
}
