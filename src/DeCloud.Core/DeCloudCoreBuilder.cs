using System.Diagnostics.CodeAnalysis;
using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace DeCloud.Core;

/// <summary>Options of <c>services.AddDeCloudCore(...)</c>.</summary>
public sealed class DeCloudCoreOptions
{
    /// <summary>The SQLite database file (created if missing). Required.</summary>
    public string? DatabasePath { get; set; }

    /// <summary>Heartbeat, health and reputation settings.</summary>
    public NodeRegistryOptions Registry { get; } = new();

    /// <summary>Effect retry settings.</summary>
    public VmEffectRunnerOptions Effects { get; } = new();

    /// <summary>Throws <see cref="DeCloudValidationException"/> naming the first bad property.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DatabasePath))
        {
            throw Model.Validate.Fail(nameof(DeCloudCoreOptions) + "." + nameof(DatabasePath), "is required (the SQLite file of the control plane).");
        }

        Registry.Validate();
        Effects.Validate();
    }
}

/// <summary>Returned by <c>AddDeCloudCore</c>; adds effects and observers.</summary>
public sealed class DeCloudCoreBuilder
{
    internal DeCloudCoreBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection.</summary>
    public IServiceCollection Services { get; }

    /// <summary>Registers an effect handler type (once per type).</summary>
    public DeCloudCoreBuilder AddVmEffect<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TEffect>()
        where TEffect : class, IVmEffect
    {
        Services.TryAddEnumerable(ServiceDescriptor.Singleton<IVmEffect, TEffect>());
        return this;
    }

    /// <summary>Says which transitions trigger which effects (and may register delegate effects).</summary>
    public DeCloudCoreBuilder ConfigureVmEffects(Action<IServiceProvider, VmEffectRegistry> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        Services.AddSingleton(new VmEffectConfiguration(configure));
        return this;
    }

    /// <summary>Registers a registry observer type (once per type), e.g. a scheduler inventory.</summary>
    public DeCloudCoreBuilder AddNodeRegistryObserver<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TObserver>()
        where TObserver : class, INodeRegistryObserver
    {
        Services.TryAddEnumerable(ServiceDescriptor.Singleton<INodeRegistryObserver, TObserver>());
        return this;
    }
}

internal sealed class VmEffectConfiguration(Action<IServiceProvider, VmEffectRegistry> configure)
{
    public void Apply(IServiceProvider services, VmEffectRegistry registry) => configure(services, registry);
}
