using DeCloud.Core.Security;
using DeCloud.Core.Security.Siwe;
using DeCloud.Core.Sqlite;
using DeCloud.Orchestrator.Api;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace DeCloud.Orchestrator.Security;

/// <summary>
/// Wires Core's security into the orchestrator: one <see cref="SqliteDatabase"/> (<c>orchestrator.db</c>) shared
/// by the orchestrator's store, the SIWE nonce store and the persistent token key ring; Sign-In with Ethereum
/// configured from <see cref="OrchestratorOptions"/>; the token issuer; connect tokens; relay tokens for NAT'd nodes.
/// </summary>
internal static class OrchestratorSecurity
{
    /// <summary>The orchestrator's id in node credentials (the audience of node tokens).</summary>
    public const string OrchestratorId = "decloud-orchestrator";

    public static void Add(IServiceCollection services)
    {
        services.TryAddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<OrchestratorOptions>>().Value;
            var dir = Directory.CreateDirectory(o.DataDirectory);
            if (!OperatingSystem.IsWindows())
            {
                // The database holds the token signing keys and session hashes: owner only.
                File.SetUnixFileMode(dir.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }

            return new SqliteDatabase(Path.Combine(o.DataDirectory, "orchestrator.db"));
        });
        services.TryAddSingleton<ITokenKeyStore>(sp => new SqliteTokenKeyStore(sp.GetRequiredService<SqliteDatabase>()));
        services.AddOptions<SiweOptions>().Configure<IOptions<OrchestratorOptions>>((s, o) =>
        {
            s.Domain = o.Value.SignInDomain;
            s.Uri = o.Value.SignInUri ?? "http://" + o.Value.SignInDomain;
            s.ChainId = o.Value.SignInChainId;
            s.NonceLifetime = o.Value.NonceLifetime;
            s.SessionLifetime = o.Value.SessionLifetime;
        });
        services.AddDeCloudSecurity()
            .AddTokenIssuing()
            .AddSignIn(OrchestratorId, _ => { });
        services.TryAddSingleton<SignInService>();
        services.TryAddSingleton<ConnectTokenService>();
        services.AddHostedService<SigningKeyRotation>();
        services.AddOptions<RelayTokenOptions>().BindConfiguration(RelayTokenOptions.SectionName).ValidateOnStart();
        services.TryAddSingleton<IValidateOptions<RelayTokenOptions>, RelayTokenOptionsValidator>();
        services.TryAddSingleton<RelayTokens>();
        services.AddSingleton<Microsoft.Extensions.Hosting.IHostedService>(sp => sp.GetRequiredService<RelayTokens>());
    }
}
