using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Core.Scheduling;

/// <summary>Returned by <see cref="SchedulerServiceCollectionExtensions.AddDeCloudScheduler"/> to add filters and scorers.</summary>
public sealed class SchedulerBuilder
{
    internal SchedulerBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection.</summary>
    public IServiceCollection Services { get; }

    /// <summary>Adds a third-party hard filter (once per type).</summary>
    public SchedulerBuilder AddFilter<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] T>()
        where T : class, IPlacementFilter
    {
        Services.TryAddEnumerable(ServiceDescriptor.Singleton<IPlacementFilter, T>());
        return this;
    }

    /// <summary>Adds a third-party scorer (once per type).</summary>
    public SchedulerBuilder AddScorer<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] T>()
        where T : class, IPlacementScorer
    {
        Services.TryAddEnumerable(ServiceDescriptor.Singleton<IPlacementScorer, T>());
        return this;
    }
}

/// <summary>DI registration of the scheduler.</summary>
public static class SchedulerServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="NodeInventory"/> and <see cref="VmScheduler"/> with validated
    /// <see cref="SchedulerOptions"/>. Calling it twice registers once.
    /// </summary>
    public static SchedulerBuilder AddDeCloudScheduler(this IServiceCollection services, Action<SchedulerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<SchedulerOptions>().Validate(o =>
        {
            o.Validate();
            return true;
        });
        if (configure is not null)
        {
            services.Configure(configure);
        }

        services.TryAddSingleton(sp => new NodeInventory(sp.GetService<TimeProvider>()));
        services.TryAddSingleton(sp => new VmScheduler(
            sp.GetRequiredService<NodeInventory>(),
            sp.GetRequiredService<IOptions<SchedulerOptions>>().Value,
            sp.GetServices<IPlacementFilter>(),
            sp.GetServices<IPlacementScorer>(),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<IMeterFactory>()));
        return new SchedulerBuilder(services);
    }
}
