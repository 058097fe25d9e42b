using DeCloud.Billing;
using DeCloud.Billing.Chain;
using DeCloud.Billing.Metering;
using DeCloud.Billing.Pricing;
using DeCloud.Orchestrator.Api;

namespace DeCloud.Orchestrator.Billing;

/// <summary>Hourly USDC prices per resource.</summary>
internal sealed record RatesView(decimal CpuPerPointHour, decimal MemoryPerGiBHour, decimal StoragePerGiBHour, decimal GpuPerHour)
{
    public static RatesView From(ResourceRates r) => new(r.CpuPerPointHour, r.MemoryPerGiBHour, r.StoragePerGiBHour, r.GpuPerHour);
}

/// <summary>One line of an itemized estimate.</summary>
internal sealed record CostLineView(string Item, decimal Quantity, decimal UnitRateUsdc, decimal HourlyUsdc);

/// <summary>
/// An itemized cost estimate: hourly = (resource lines) x bandwidth multiplier + bandwidth rate. Daily and
/// monthly (730 h) amounts are what the ledger would charge, in whole micro-USDC.
/// </summary>
internal sealed record EstimateView(
    decimal HourlyUsdc,
    long HourlyMicroUsdc,
    decimal DailyUsdc,
    decimal MonthlyUsdc,
    decimal ResourceHourlyUsdc,
    string QualityTier,
    string BandwidthTier,
    decimal BandwidthMultiplier,
    decimal BandwidthHourlyUsdc,
    IReadOnlyList<CostLineView> Lines,
    RatesView Rates)
{
    public static EstimateView From(CostEstimate e, ResourceRates rates) => new(
        e.HourlyUsdc, e.MicroUsdcFor(1), MicroUsdc.ToUsdc(e.MicroUsdcFor(24)), MicroUsdc.ToUsdc(e.MicroUsdcFor(730)), e.ResourceHourlyUsdc,
        e.QualityTier.ToString(), e.BandwidthTier.ToString(), e.BandwidthMultiplier, e.BandwidthHourlyUsdc,
        e.Lines.Select(l => new CostLineView(l.Item, l.Quantity, l.UnitRateUsdc, l.HourlyUsdc)).ToList(), RatesView.From(rates));
}

/// <summary>The estimate on one candidate node, at its floor-enforced prices.</summary>
internal sealed record NodeEstimateView(string NodeId, bool Online, EstimateView Estimate);

/// <summary>POST /api/v1/vms/estimate answer: at the platform defaults (what a new VM starts at), and on the chosen node.</summary>
internal sealed record EstimateResponse(EstimateView PlatformDefaults, NodeEstimateView? Node);

/// <summary>A node's prices: what it charges (floor-enforced), the platform floors and defaults.</summary>
internal sealed record PricingView(string NodeId, string Operator, RatesView Rates, RatesView Floors, RatesView Defaults);

/// <summary>PATCH /api/v1/nodes/{id}/pricing body: the rates to change (USDC per unit-hour); omitted ones stay.</summary>
internal sealed record PricingUpdateRequest(decimal? CpuPerPointHour = null, decimal? MemoryPerGiBHour = null, decimal? StoragePerGiBHour = null, decimal? GpuPerHour = null);

/// <summary>PATCH /api/v1/nodes/{id}/pricing answer: what was asked, what is in effect, and which rates were raised to the floor.</summary>
internal sealed record PricingUpdateResponse(string NodeId, RatesView Requested, RatesView Effective, IReadOnlyList<string> RaisedToFloor, RatesView Floors);

/// <summary>A VM's billing lease: the frozen hourly rate and what was charged.</summary>
internal sealed record LeaseView(string VmId, string? NodeId, decimal HourlyRateUsdc, long BilledSeconds, long ChargedMicroUsdc, bool Closed)
{
    public static LeaseView From(BillingLease l) => new(l.Vm.ToString(), l.Node?.Value, l.HourlyRateUsdc, l.BilledSeconds, l.ChargedMicroUsdc, l.IsClosed);
}

/// <summary>GET /api/v1/balance answer (amounts in micro-USDC and as USDC text).</summary>
internal sealed record BalanceView(
    string Address,
    long BalanceMicroUsdc,
    string BalanceUsdc,
    long EscrowMicroUsdc,
    string EscrowUsdc,
    bool Overdrawn,
    IReadOnlyList<LeaseView> Vms);

/// <summary>POST /api/v1/deposits body.</summary>
internal sealed record DepositRequest(string? TxHash);

/// <summary>One verified USDC transfer to the deposit address.</summary>
internal sealed record DepositView(string TxHash, long LogIndex, string From, long AmountMicroUsdc, string AmountUsdc, long BlockNumber, string State)
{
    public static DepositView Of(ChainDeposit d) =>
        new(d.TxHash, d.LogIndex, d.From.ToString(), d.AmountMicroUsdc, MicroUsdc.Format(d.AmountMicroUsdc), d.BlockNumber, d.State.ToString());
}

/// <summary>POST /api/v1/deposits answer.</summary>
internal sealed record DepositClaimView(string TxHash, string Outcome, long Confirmations, int RequiredConfirmations, IReadOnlyList<DepositView> Deposits);

/// <summary>A node in GET /api/v1/nodes/featured, with its rank and the reason.</summary>
internal sealed record FeaturedNodeView(int Rank, NodeView Node, decimal Score, decimal? Uptime, decimal ReferenceHourlyUsdc, decimal PriceScore, string Reason);
