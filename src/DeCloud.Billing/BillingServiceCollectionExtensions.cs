using DeCloud.Billing.Chain;
using DeCloud.Billing.Escrow;
using DeCloud.Billing.Ledger;
using DeCloud.Billing.Metering;
using DeCloud.Billing.Pricing;
using DeCloud.Core.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Billing;

/// <summary>What <see cref="BillingServiceCollectionExtensions.AddDeCloudBilling"/> returns, for further configuration.</summary>
public sealed class BillingBuilder
{
    internal BillingBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection.</summary>
    public IServiceCollection Services { get; }
}

/// <summary>Registers DeCloud.Billing in a service collection.</summary>
public static class BillingServiceCollectionExtensions
{
    /// <summary>
    /// Adds the ledger, pricing, metering, template escrow and (when <see cref="BillingOptions.Chain"/>
    /// is set) deposits and payouts as singletons. Registrations use <c>TryAdd</c>: calling it twice
    /// registers each service once, and a <see cref="SqliteDatabase"/>, <see cref="TimeProvider"/> or
    /// <see cref="INodeUptimeSource"/> the host registered is used. Options are validated when first used
    /// and at host start.
    /// </summary>
    public static BillingBuilder AddDeCloudBilling(this IServiceCollection services, Action<BillingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<BillingOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BillingOptions>, BillingOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new SqliteDatabase(Options(sp).DatabasePath));
        services.TryAddSingleton(sp => new BillingLedger(sp.GetRequiredService<SqliteDatabase>(), sp.GetService<ILoggerFactory>(), sp.GetService<TimeProvider>()));
        services.TryAddSingleton(sp => new PriceCalculator(Options(sp).Pricing));
        services.TryAddSingleton(sp => new NodePriceBook(sp.GetRequiredService<SqliteDatabase>(), Options(sp).Pricing, sp.GetService<TimeProvider>()));
        services.TryAddSingleton(sp => new UsageMeter(
            sp.GetRequiredService<BillingLedger>(), sp.GetRequiredService<PriceCalculator>(), sp.GetRequiredService<NodePriceBook>(),
            Options(sp).Metering, sp.GetService<INodeUptimeSource>(), sp.GetService<ILoggerFactory>(), sp.GetService<TimeProvider>()));
        services.TryAddSingleton(sp => new TemplateEscrow(sp.GetRequiredService<BillingLedger>()));
        services.TryAddSingleton(sp => new UsdcDeposits(ChainOf(sp), sp.GetRequiredService<BillingLedger>(), sp.GetService<ILoggerFactory>()));
        services.TryAddSingleton(sp => new OperatorPayouts(ChainOf(sp), sp.GetRequiredService<BillingLedger>(), sp.GetService<ILoggerFactory>()));
        return new BillingBuilder(services);
    }

    private static BillingOptions Options(IServiceProvider sp)
    {
        var o = sp.GetRequiredService<IOptions<BillingOptions>>().Value;
        o.Validate();
        return o;
    }

    private static ChainOptions ChainOf(IServiceProvider sp) =>
        Options(sp).Chain ?? throw Check.Fail("Chain", "is not configured; set BillingOptions.Chain to use deposits and payouts.");

    private sealed class BillingOptionsValidator : IValidateOptions<BillingOptions>
    {
        public ValidateOptionsResult Validate(string? name, BillingOptions options)
        {
            try
            {
                options.Validate();
                return ValidateOptionsResult.Success;
            }
            catch (BillingValidationException ex)
            {
                return ValidateOptionsResult.Fail(ex.Message);
            }
        }
    }
}
