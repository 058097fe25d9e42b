using DeCloud.Virtualization.Libvirt;
using DeCloud.Virtualization.Qos;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Virtualization;

/// <summary>Returned by <see cref="VirtualizationServiceCollectionExtensions.AddDeCloudVirtualization"/> for further configuration.</summary>
public sealed class DeCloudVirtualizationBuilder
{
    internal DeCloudVirtualizationBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection.</summary>
    public IServiceCollection Services { get; }
}

/// <summary>DI registration for DeCloud.Virtualization; every type also works without DI.</summary>
public static class VirtualizationServiceCollectionExtensions
{
    /// <summary>
    /// Registers validated <see cref="VirtualizationOptions"/>, one shared <see cref="LibvirtConnection"/> (opened on first
    /// use, closed with the container), <see cref="TcShaper"/>, <see cref="NicBandwidthEnforcer"/> and <see cref="TimeProvider"/>. Calling it again only adds
    /// another <paramref name="configure"/>; services are registered once.
    /// </summary>
    public static DeCloudVirtualizationBuilder AddDeCloudVirtualization(this IServiceCollection services, Action<VirtualizationOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<VirtualizationOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<VirtualizationOptions>, VirtualizationOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => LibvirtConnection.Open(
            sp.GetRequiredService<IOptions<VirtualizationOptions>>().Value.ConnectionUri,
            sp.GetService<ILoggerFactory>()));
        services.TryAddSingleton(sp => new TcShaper(logger: sp.GetService<ILogger<TcShaper>>()));
        services.TryAddSingleton(sp =>
        {
            var connection = sp.GetRequiredService<LibvirtConnection>();
            var loggerFactory = sp.GetService<ILoggerFactory>();
            var forced = sp.GetRequiredService<IOptions<VirtualizationOptions>>().Value.BandwidthEnforcement;
            // Without a forced mode the kernel is probed once per process (a few tc commands in a throw-away namespace).
            return forced is { } mode
                ? new NicBandwidthEnforcer(connection, mode, sp.GetRequiredService<TcShaper>(), loggerFactory)
                : NicBandwidthEnforcer.CreateAsync(connection, loggerFactory).GetAwaiter().GetResult();
        });
        return new DeCloudVirtualizationBuilder(services);
    }
}
