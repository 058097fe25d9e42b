using DeCloud.Storage;
using DeCloud.Storage.Moves;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers DeCloud.Storage with dependency injection.</summary>
public static class StorageServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="BtrfsVolumes"/>, <see cref="VolumeReceiver"/> and <see cref="VolumeMove"/> as
    /// singletons configured by <paramref name="configure"/>. Options are validated when first resolved,
    /// with messages naming the property. Calling this twice registers each service once.
    /// </summary>
    public static StorageBuilder AddDeCloudStorage(this IServiceCollection services, Action<BtrfsVolumesOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions();
        services.Configure(configure);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new BtrfsVolumes(sp.GetRequiredService<IOptions<BtrfsVolumesOptions>>().Value, sp.GetService<ILoggerFactory>()));
        services.TryAddSingleton(sp => new VolumeReceiver(
            sp.GetRequiredService<BtrfsVolumes>(), sp.GetRequiredService<IOptions<VolumeReceiverOptions>>().Value, sp.GetService<ILoggerFactory>(),
            sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new VolumeMove(
            sp.GetRequiredService<BtrfsVolumes>(), sp.GetRequiredService<IOptions<VolumeMoveOptions>>().Value,
            sp.GetService<ILoggerFactory>(), sp.GetRequiredService<TimeProvider>()));
        return new StorageBuilder(services);
    }
}

/// <summary>Returned by <see cref="StorageServiceCollectionExtensions.AddDeCloudStorage"/> to configure moves further.</summary>
public sealed class StorageBuilder
{
    internal StorageBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection.</summary>
    public IServiceCollection Services { get; }

    /// <summary>Configures the source side of moves.</summary>
    public StorageBuilder ConfigureMoves(Action<VolumeMoveOptions> configure)
    {
        Services.Configure(configure);
        return this;
    }

    /// <summary>Configures the destination side of moves.</summary>
    public StorageBuilder ConfigureReceiver(Action<VolumeReceiverOptions> configure)
    {
        Services.Configure(configure);
        return this;
    }
}
