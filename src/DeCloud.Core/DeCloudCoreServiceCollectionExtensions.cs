using DeCloud.Core;
using DeCloud.Core.Lifecycle;
using DeCloud.Core.Registry;
using DeCloud.Core.Sqlite;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers DeCloud.Core's control plane (SQLite stores, node registry, health monitor, VM lifecycle, effect runner).</summary>
public static class DeCloudCoreServiceCollectionExtensions
{
    /// <summary>
    /// Adds the control plane with <c>TryAdd*</c> registrations: calling it again registers nothing twice
    /// (later <paramref name="configure"/> delegates still apply). Options are validated when the services
    /// are first resolved (at host start, by the hosted services), with messages naming the property.
    /// </summary>
    public static DeCloudCoreBuilder AddDeCloudCore(this IServiceCollection services, Action<DeCloudCoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions();
        if (configure is not null)
        {
            services.Configure(configure);
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<DeCloudCoreOptions>>().Value;
            options.Validate();
            return new SqliteDatabase(options.DatabasePath!);
        });
        services.TryAddSingleton<INodeStore>(sp => new SqliteNodeStore(sp.GetRequiredService<SqliteDatabase>()));
        services.TryAddSingleton<IVmStore>(sp => new SqliteVmStore(sp.GetRequiredService<SqliteDatabase>()));
        services.TryAddSingleton(sp => new NodeRegistry(
            sp.GetRequiredService<INodeStore>(),
            sp.GetRequiredService<IOptions<DeCloudCoreOptions>>().Value.Registry,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILoggerFactory>(),
            sp.GetServices<INodeRegistryObserver>()));
        services.TryAddSingleton(sp => new NodeHealthMonitor(sp.GetRequiredService<NodeRegistry>(), sp.GetRequiredService<TimeProvider>(), sp.GetService<ILoggerFactory>()));
        services.TryAddSingleton(sp =>
        {
            var registry = new VmEffectRegistry();
            foreach (var effect in sp.GetServices<IVmEffect>())
            {
                registry.Register(effect);
            }

            foreach (var configureEffects in sp.GetServices<VmEffectConfiguration>())
            {
                configureEffects.Apply(sp, registry);
            }

            return registry;
        });
        services.TryAddSingleton(sp => new VmLifecycle(
            sp.GetRequiredService<IVmStore>(), sp.GetRequiredService<VmEffectRegistry>(), sp.GetRequiredService<TimeProvider>(), sp.GetService<ILoggerFactory>()));
        services.TryAddSingleton(sp => new VmEffectRunner(
            sp.GetRequiredService<IVmStore>(), sp.GetRequiredService<VmEffectRegistry>(),
            sp.GetRequiredService<IOptions<DeCloudCoreOptions>>().Value.Effects, sp.GetRequiredService<TimeProvider>(), sp.GetService<ILoggerFactory>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, NodeHealthMonitor>(sp => sp.GetRequiredService<NodeHealthMonitor>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, VmEffectRunner>(sp => sp.GetRequiredService<VmEffectRunner>()));
        return new DeCloudCoreBuilder(services);
    }
}
