namespace DeCloud.Orchestrator.Billing;

/// <summary>
/// How the orchestrator runs billing (configuration section <c>Billing</c>, beside DeCloud.Billing's own
/// <c>BillingOptions</c>: <c>Billing:Pricing</c>, <c>Billing:Metering</c> and <c>Billing:Chain</c>, e.g.
/// <c>--Billing:Chain:RpcUrl=https://polygon-rpc.example/ --Billing:Chain:UsdcContract=0x… --Billing:Chain:DepositAddress=0x… --Billing:Chain:Confirmations=64</c>).
/// </summary>
internal sealed class BillingHostOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Billing";

    /// <summary>How often complete running hours are charged, ended leases closed and overdrawn users' VMs stopped. Default 1 min.</summary>
    public TimeSpan AccrualInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How often pending and recent deposits are re-checked on chain (when a chain is configured). Default 1 min.</summary>
    public TimeSpan DepositReconcileInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Checks every setting; returns the problems found, each naming its property.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        foreach (var (name, value) in new[] { (nameof(AccrualInterval), AccrualInterval), (nameof(DepositReconcileInterval), DepositReconcileInterval) })
        {
            if (value < TimeSpan.FromMilliseconds(50) || value > TimeSpan.FromHours(1))
            {
                errors.Add($"Billing:{name} is {value}; it must be between 50 ms and 1 h.");
            }
        }

        return errors;
    }
}
