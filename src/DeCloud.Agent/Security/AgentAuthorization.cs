using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DeCloud.Agent.Security;

/// <summary>Where a running agent checks connect tokens.</summary>
/// <param name="Address">The bound <c>POST /authorize</c> endpoint's base address (loopback).</param>
/// <param name="NodeId">The node id tokens must name as their audience.</param>
public sealed record AgentAuthorizationEndpoint(Uri Address, string NodeId);

/// <summary>Access to the connect-token check of an agent built by <see cref="AgentApplication.Create"/>.</summary>
public static class AgentAuthorization
{
    /// <summary>The started agent's authorization endpoint, or null when it is turned off or not started yet.</summary>
    public static AgentAuthorizationEndpoint? Endpoint(IHost agent)
    {
        ArgumentNullException.ThrowIfNull(agent);
        var endpoint = agent.Services.GetService<AuthorizationEndpoint>();
        return endpoint?.Address is { } address
            ? new AgentAuthorizationEndpoint(address, agent.Services.GetRequiredService<ConnectAuthorizer>().Audience)
            : null;
    }
}
