namespace DeCloud.Cli.Client;

/// <summary>A VM's billing lease as GET /api/v1/balance shows it.</summary>
internal sealed record LeaseInfo(string VmId, string? NodeId, decimal HourlyRateUsdc, long BilledSeconds, long ChargedMicroUsdc, bool Closed);

/// <summary>GET /api/v1/balance.</summary>
internal sealed record BalanceInfo(string Address, long BalanceMicroUsdc, string BalanceUsdc, long EscrowMicroUsdc, string EscrowUsdc, bool Overdrawn, List<LeaseInfo> Vms);

/// <summary>One line of a cost estimate.</summary>
internal sealed record CostLineInfo(string Item, decimal Quantity, decimal UnitRateUsdc, decimal HourlyUsdc);

/// <summary>An itemized cost estimate.</summary>
internal sealed record CostEstimateInfo(decimal HourlyUsdc, long HourlyMicroUsdc, decimal DailyUsdc, decimal MonthlyUsdc, decimal ResourceHourlyUsdc,
    string QualityTier, string BandwidthTier, decimal BandwidthMultiplier, decimal BandwidthHourlyUsdc, List<CostLineInfo> Lines);

/// <summary>The estimate on a chosen node.</summary>
internal sealed record NodeEstimateInfo(string NodeId, bool Online, CostEstimateInfo Estimate);

/// <summary>POST /api/v1/vms/estimate.</summary>
internal sealed record EstimateInfo(CostEstimateInfo PlatformDefaults, NodeEstimateInfo? Node);

/// <summary>A USDC deposit verified on chain.</summary>
internal sealed record DepositInfo(string TxHash, long LogIndex, string From, long AmountMicroUsdc, string AmountUsdc, long BlockNumber, string State);

/// <summary>POST /api/v1/deposits.</summary>
internal sealed record DepositClaimInfo(string TxHash, string Outcome, long Confirmations, int RequiredConfirmations, List<DepositInfo> Deposits);

/// <summary>Hourly USDC rates per resource.</summary>
internal sealed record RatesInfo(decimal CpuPerPointHour, decimal MemoryPerGiBHour, decimal StoragePerGiBHour, decimal GpuPerHour);

/// <summary>PATCH /api/v1/nodes/{id}/pricing.</summary>
internal sealed record PricingUpdateInfo(string NodeId, RatesInfo Requested, RatesInfo Effective, List<string> RaisedToFloor, RatesInfo Floors);

/// <summary>The billing calls of the orchestrator's API.</summary>
internal static class BillingClient
{
    public static Task<BalanceInfo> GetBalanceAsync(this OrchestratorClient client, CancellationToken ct) =>
        client.SendAsync<BalanceInfo>(HttpMethod.Get, "api/v1/balance", null, ct);

    public static Task<EstimateInfo> EstimateVmAsync(this OrchestratorClient client, object request, CancellationToken ct) =>
        client.SendAsync<EstimateInfo>(HttpMethod.Post, "api/v1/vms/estimate", request, ct);

    public static Task<PricingUpdateInfo> SetNodePricingAsync(this OrchestratorClient client, string nodeId, object rates, CancellationToken ct) =>
        client.SendAsync<PricingUpdateInfo>(HttpMethod.Patch, $"api/v1/nodes/{Uri.EscapeDataString(nodeId)}/pricing", rates, ct);

    public static Task<DepositClaimInfo> ClaimDepositAsync(this OrchestratorClient client, string txHash, CancellationToken ct) =>
        client.SendAsync<DepositClaimInfo>(HttpMethod.Post, "api/v1/deposits", new { txHash }, ct);

    public static Task<List<DepositInfo>> ListDepositsAsync(this OrchestratorClient client, CancellationToken ct) =>
        client.SendAsync<List<DepositInfo>>(HttpMethod.Get, "api/v1/deposits", null, ct);
}
