using DeCloud.Core.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace DeCloud.Agent.Security;

/// <summary>Registers the agent's connect-token check: key set sync, authorizer, local endpoint. Idempotent.</summary>
internal static class AgentSecurityRegistration
{
    public static void Add(IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(ConnectAuthorizer)))
        {
            return;
        }

        services.AddOptions<AgentAuthorizationOptions>().BindConfiguration(AgentAuthorizationOptions.SectionName).ValidateOnStart();
        services.TryAddSingleton<IValidateOptions<AgentAuthorizationOptions>, AgentAuthorizationOptionsValidator>();
        services.AddDeCloudSecurity();
        services.TryAddSingleton<IKeySetSource, HttpKeySetSource>();
        services.TryAddSingleton<OrchestratorKeySet>();
        services.TryAddSingleton<ConnectAuthorizer>();
        services.TryAddSingleton<AuthorizationEndpoint>();
        services.TryAddSingleton<RelayTokenAuthenticator>();
        services.TryAddSingleton<RelayTokenCredentials>();
        services.TryAddSingleton<Storage.MoveTokenGate>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<OrchestratorKeySet>());
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<AuthorizationEndpoint>());
    }
}

/// <summary>Turns <see cref="AgentAuthorizationOptions.Validate"/> into start-up failures that name the property.</summary>
internal sealed class AgentAuthorizationOptionsValidator : IValidateOptions<AgentAuthorizationOptions>
{
    public ValidateOptionsResult Validate(string? name, AgentAuthorizationOptions options)
    {
        var errors = options.Validate();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
