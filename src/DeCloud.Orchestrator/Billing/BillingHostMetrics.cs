using System.Diagnostics.Metrics;

namespace DeCloud.Orchestrator.Billing;

/// <summary>The orchestrator's billing instruments (meter <c>DeCloud.Orchestrator.Billing</c>; the ledger's own are in <c>DeCloud.Billing</c>).</summary>
internal sealed class BillingHostMetrics : IDisposable
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "DeCloud.Orchestrator.Billing";

    private readonly Meter _meter;

    public BillingHostMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(MeterName);
        UsageRecords = _meter.CreateCounter<long>("decloud.orchestrator.billing.usage_records", "{record}", "Usage records received with heartbeats, by outcome.");
        VmsStopped = _meter.CreateCounter<long>("decloud.orchestrator.billing.vms_stopped", "{vm}", "VMs stopped because their owner's balance ran out.");
        DepositClaims = _meter.CreateCounter<long>("decloud.orchestrator.billing.deposit_claims", "{claim}", "Deposit claims through the API, by outcome.");
    }

    public Counter<long> UsageRecords { get; }

    public Counter<long> VmsStopped { get; }

    public Counter<long> DepositClaims { get; }

    public void Dispose() => _meter.Dispose();
}
