using System.Diagnostics.CodeAnalysis;
using DeCloud.Relay.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Relay;

/// <summary>Configures the relay server registered by <see cref="RelayServiceCollectionExtensions.AddDeCloudRelayServer"/>.</summary>
public sealed class RelayServerBuilder
{
    internal RelayServerBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection.</summary>
    public IServiceCollection Services { get; }

    /// <summary>Authenticates nodes with the built-in HMAC challenge and one shared secret.</summary>
    public RelayServerBuilder UseHmacSecret(byte[] sharedSecret)
    {
        var authenticator = new HmacChallengeAuthenticator(sharedSecret);
        Services.Replace(ServiceDescriptor.Singleton<IRelayAuthenticator>(authenticator));
        return this;
    }

    /// <summary>Authenticates nodes with a host-provided authenticator (tokens, ACLs).</summary>
    public RelayServerBuilder UseAuthenticator<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TAuthenticator>()
        where TAuthenticator : class, IRelayAuthenticator
    {
        Services.Replace(ServiceDescriptor.Singleton<IRelayAuthenticator, TAuthenticator>());
        return this;
    }
}

/// <summary>Configures the relay client registered by <see cref="RelayServiceCollectionExtensions.AddDeCloudRelayClient"/>.</summary>
public sealed class RelayClientBuilder
{
    internal RelayClientBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection.</summary>
    public IServiceCollection Services { get; }

    /// <summary>Answers the relay's challenge with the built-in HMAC scheme.</summary>
    public RelayClientBuilder UseHmacSecret(byte[] secret)
    {
        var credentials = new HmacChallengeCredentials(secret);
        Services.Replace(ServiceDescriptor.Singleton<IRelayCredentials>(credentials));
        return this;
    }

    /// <summary>Answers the relay's challenge with host-provided credentials (tokens).</summary>
    public RelayClientBuilder UseCredentials<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TCredentials>()
        where TCredentials : class, IRelayCredentials
    {
        Services.Replace(ServiceDescriptor.Singleton<IRelayCredentials, TCredentials>());
        return this;
    }

    /// <summary>Publishes <paramref name="request"/> when the host starts (and after every reconnect).</summary>
    public RelayClientBuilder AddMapping(RelayMappingRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        Services.Configure<RelayClientMappingOptions>(o => o.Requests.Add(request));
        return this;
    }
}

/// <summary>Mappings to publish at start (filled by <see cref="RelayClientBuilder.AddMapping"/>).</summary>
public sealed class RelayClientMappingOptions
{
    /// <summary>The requests, in order.</summary>
    public IList<RelayMappingRequest> Requests { get; } = new List<RelayMappingRequest>();
}

/// <summary>Registers the relay server or client with dependency injection. Calling twice registers once.</summary>
public static class RelayServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="RelayServer"/> singleton, started and stopped with the host. Options are validated at
    /// start. Choose an authenticator on the returned builder (<see cref="RelayServerBuilder.UseHmacSecret"/>).
    /// </summary>
    public static RelayServerBuilder AddDeCloudRelayServer(this IServiceCollection services, Action<RelayServerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<RelayServerOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RelayServerOptions>, RelayServerOptionsValidator>());
        services.TryAddSingleton(sp => new RelayServer(
            sp.GetRequiredService<IOptions<RelayServerOptions>>().Value,
            sp.GetService<IRelayAuthenticator>() ?? throw new InvalidOperationException("No IRelayAuthenticator is registered; call UseHmacSecret or UseAuthenticator on the relay server builder."),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<TimeProvider>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RelayServerHostedService>());
        return new RelayServerBuilder(services);
    }

    /// <summary>
    /// Registers a <see cref="RelayClient"/> singleton, started and stopped with the host, publishing the mappings added
    /// on the returned builder. Options are validated at start.
    /// </summary>
    public static RelayClientBuilder AddDeCloudRelayClient(this IServiceCollection services, Action<RelayClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<RelayClientOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RelayClientOptions>, RelayClientOptionsValidator>());
        services.TryAddSingleton(sp => new RelayClient(
            sp.GetRequiredService<IOptions<RelayClientOptions>>().Value,
            sp.GetService<IRelayCredentials>() ?? throw new InvalidOperationException("No IRelayCredentials are registered; call UseHmacSecret or UseCredentials on the relay client builder."),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<TimeProvider>()));
        services.TryAddSingleton(sp =>
        {
            var startup = new RelayClientStartupMappings();
            startup.Requests.AddRange(sp.GetRequiredService<IOptions<RelayClientMappingOptions>>().Value.Requests);
            return startup;
        });
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RelayClientHostedService>());
        return new RelayClientBuilder(services);
    }
}
