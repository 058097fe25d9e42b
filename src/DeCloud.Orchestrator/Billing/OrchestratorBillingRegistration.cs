using DeCloud.Billing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace DeCloud.Orchestrator.Billing;

/// <summary>Composes DeCloud.Billing into the orchestrator (one call from AddDeCloudOrchestrator).</summary>
internal static class OrchestratorBillingRegistration
{
    /// <summary>
    /// Adds DeCloud.Billing on the orchestrator's SQLite file (<c>orchestrator.db</c> in the data folder, its own
    /// tables), configured from the <c>Billing</c> section, plus the hooks the VM path and heartbeats call, the
    /// billing pass, deposits and featured nodes. Idempotent.
    /// </summary>
    public static IServiceCollection AddOrchestratorBilling(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(IVmBillingHook)))
        {
            return services;
        }

        services.AddDeCloudBilling();
        services.AddSingleton<IConfigureOptions<BillingOptions>, ConfigureBilling>();
        services.AddOptions<BillingHostOptions>()
            .Configure<IServiceProvider>((o, sp) => Section(sp)?.Bind(o))
            .ValidateOnStart();
        services.TryAddSingleton<IValidateOptions<BillingHostOptions>, BillingHostOptionsValidator>();
        services.TryAddSingleton<BillingHostMetrics>();
        services.TryAddSingleton<IVmBillingHook, VmBilling>();
        services.TryAddSingleton<IUsageSink, UsageIngest>();
        services.TryAddSingleton<DepositGateway>();
        services.TryAddSingleton<DeCloud.Billing.Metering.INodeUptimeSource, StoreUptimeSource>();
        services.TryAddSingleton<INodePricingSource, RegistryPricing>();
        services.TryAddSingleton<FeaturedNodes>();
        services.TryAddSingleton<BillingLoop>();
        services.AddHostedService(sp => sp.GetRequiredService<BillingLoop>());
        return services;
    }

    private static IConfigurationSection? Section(IServiceProvider sp) =>
        sp.GetService<IConfiguration>()?.GetSection(BillingHostOptions.SectionName);

    /// <summary>Billing's database is the orchestrator's; then <c>Billing:*</c> settings apply (Pricing, Metering, Chain).</summary>
    private sealed class ConfigureBilling(IServiceProvider services, IOptions<OrchestratorOptions> orchestrator) : IConfigureOptions<BillingOptions>
    {
        public void Configure(BillingOptions options)
        {
            options.DatabasePath = Path.Combine(orchestrator.Value.DataDirectory, "orchestrator.db");
            Section(services)?.Bind(options);
        }
    }

    private sealed class BillingHostOptionsValidator : IValidateOptions<BillingHostOptions>
    {
        public ValidateOptionsResult Validate(string? name, BillingHostOptions options)
        {
            var errors = options.Validate();
            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
        }
    }
}
