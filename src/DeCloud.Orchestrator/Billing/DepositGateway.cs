using DeCloud.Billing;
using DeCloud.Billing.Chain;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace DeCloud.Orchestrator.Billing;

/// <summary>
/// DeCloud.Billing's <see cref="UsdcDeposits"/> when <c>Billing:Chain</c> is configured, else null (the
/// deposit endpoints then answer 503). Resolved lazily, so an orchestrator without a chain never builds an RPC client.
/// </summary>
internal sealed class DepositGateway(IServiceProvider services, IOptions<BillingOptions> options)
{
    private readonly Lazy<UsdcDeposits?> _deposits = new(() => options.Value.Chain is null ? null : services.GetRequiredService<UsdcDeposits>());

    /// <summary>The deposits service, or null when no chain is configured.</summary>
    public UsdcDeposits? Deposits => _deposits.Value;

    /// <summary>Blocks a deposit needs before it is credited (0 when no chain is configured).</summary>
    public int RequiredConfirmations => options.Value.Chain?.Confirmations ?? 0;
}
