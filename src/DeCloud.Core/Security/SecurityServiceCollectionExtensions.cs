using System.Diagnostics.CodeAnalysis;
using DeCloud.Core.Security;
using DeCloud.Core.Security.Siwe;
using DeCloud.Core.Sqlite;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds DeCloud's tokens, sign-in and host-side authorization to a service collection.</summary>
public static class SecurityServiceCollectionExtensions
{
    /// <summary>
    /// Registers the shared security services (clock, revocation list, verification keys, an in-memory
    /// audit log unless another <see cref="IAuthorizationAuditLog"/> is registered). Idempotent.
    /// Add the role-specific parts with the returned builder.
    /// </summary>
    public static DeCloudSecurityBuilder AddDeCloudSecurity(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new TokenRevocationList(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton<TokenVerificationKeys>();
        services.TryAddSingleton<IAuthorizationAuditLog>(_ => new InMemoryAuthorizationAuditLog());
        return new DeCloudSecurityBuilder(services);
    }
}

/// <summary>Adds the orchestrator-side or host-side parts of DeCloud security.</summary>
public sealed class DeCloudSecurityBuilder
{
    internal DeCloudSecurityBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection.</summary>
    public IServiceCollection Services { get; }

    /// <summary>Host, relay or orchestrator: a <see cref="TokenValidator"/> (options validated at start).</summary>
    public DeCloudSecurityBuilder AddTokenValidation(Action<TokenValidatorOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        Services.AddOptions<TokenValidatorOptions>().Configure(configure).Validate(Valid<TokenValidatorOptions>(o => o.Validate())).ValidateOnStart();
        Services.TryAddSingleton(sp => new TokenValidator(sp.GetRequiredService<IOptions<TokenValidatorOptions>>().Value,
            sp.GetRequiredService<TokenVerificationKeys>(), sp.GetRequiredService<TokenRevocationList>(),
            sp.GetRequiredService<IAuthorizationAuditLog>(), sp.GetRequiredService<TimeProvider>()));
        return this;
    }

    /// <summary>
    /// Orchestrator: a <see cref="TokenKeyRing"/> and a <see cref="TokenIssuer"/>. The ring is kept in the
    /// registered <see cref="ITokenKeyStore"/> (for example <see cref="SqliteTokenKeyStore"/>) when there is one,
    /// otherwise in memory only.
    /// </summary>
    public DeCloudSecurityBuilder AddTokenIssuing(Action<TokenIssuerOptions>? configureIssuer = null, Action<TokenKeyRingOptions>? configureKeys = null)
    {
        Services.AddOptions<TokenIssuerOptions>().Configure(configureIssuer ?? (_ => { })).Validate(Valid<TokenIssuerOptions>(o => o.Validate())).ValidateOnStart();
        Services.AddOptions<TokenKeyRingOptions>().Configure(configureKeys ?? (_ => { })).Validate(Valid<TokenKeyRingOptions>(o => o.Validate())).ValidateOnStart();
        Services.TryAddSingleton(sp => sp.GetService<ITokenKeyStore>() is { } store
            ? new TokenKeyRing(store, sp.GetRequiredService<IOptions<TokenKeyRingOptions>>().Value, sp.GetRequiredService<TimeProvider>())
            : new TokenKeyRing(sp.GetRequiredService<IOptions<TokenKeyRingOptions>>().Value, sp.GetRequiredService<TimeProvider>()));
        Services.TryAddSingleton(sp => new TokenIssuer(sp.GetRequiredService<TokenKeyRing>(),
            sp.GetRequiredService<IOptions<TokenIssuerOptions>>().Value, sp.GetRequiredService<TimeProvider>()));
        return this;
    }

    /// <summary>
    /// Orchestrator: Sign-In with Ethereum with nonces in SQLite (register a <see cref="SqliteDatabase"/>
    /// or another <see cref="ISiweNonceStore"/>), and node credentials for <paramref name="orchestratorId"/>.
    /// </summary>
    public DeCloudSecurityBuilder AddSignIn(string orchestratorId, Action<SiweOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        Services.AddOptions<SiweOptions>().Configure(configure).Validate(Valid<SiweOptions>(o => o.Validate())).ValidateOnStart();
        Services.TryAddSingleton<ISiweNonceStore>(sp => new SqliteSiweNonceStore(sp.GetRequiredService<SqliteDatabase>()));
        Services.TryAddSingleton(sp => new SiweSignIn(sp.GetRequiredService<IOptions<SiweOptions>>().Value, sp.GetRequiredService<ISiweNonceStore>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetService<ILogger<SiweSignIn>>()));
        Services.TryAddSingleton(sp => new NodeCredentials(sp.GetRequiredService<SiweSignIn>(), sp.GetRequiredService<TokenIssuer>(), orchestratorId));
        return this;
    }

    /// <summary>Host: a <see cref="HostAuthorizationCache"/> asking <typeparamref name="TSource"/> (the orchestrator client).</summary>
    public DeCloudSecurityBuilder AddHostAuthorizationCache<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TSource>(Action<HostAuthorizationCacheOptions>? configure = null)
        where TSource : class, IAuthorizationSource
    {
        Services.AddOptions<HostAuthorizationCacheOptions>().Configure(configure ?? (_ => { })).Validate(Valid<HostAuthorizationCacheOptions>(o => o.Validate())).ValidateOnStart();
        Services.TryAddSingleton<IAuthorizationSource, TSource>();
        Services.TryAddSingleton(sp => new HostAuthorizationCache(sp.GetRequiredService<IAuthorizationSource>(),
            sp.GetRequiredService<IOptions<HostAuthorizationCacheOptions>>().Value, sp.GetRequiredService<IAuthorizationAuditLog>(),
            sp.GetRequiredService<TokenRevocationList>(), sp.GetRequiredService<TimeProvider>(), sp.GetService<ILogger<HostAuthorizationCache>>()));
        return this;
    }

    // Options types validate by throwing DeCloudValidationException naming the property; the
    // exception surfaces from ValidateOnStart with that message.
    private static Func<T, bool> Valid<T>(Action<T> validate) => o =>
    {
        validate(o);
        return true;
    };
}
