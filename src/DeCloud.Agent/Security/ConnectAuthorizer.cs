using DeCloud.Agent.Control;
using DeCloud.Core.Model;
using DeCloud.Core.Security;

namespace DeCloud.Agent.Security;

/// <summary>
/// Checks connect tokens on this node with Core's <see cref="TokenValidator"/>: signed by a key in the
/// orchestrator's published set, issued by the orchestrator, addressed to this node (its node id is the
/// audience, also when it acts as the relay of a NAT'd node), unexpired, and granting the scope on the VM.
/// A token naming a key this node has not seen yet makes it fetch the key set once more (rate limited).
/// </summary>
internal sealed class ConnectAuthorizer
{
    private readonly TokenValidator _validator;
    private readonly OrchestratorKeySet _keySet;

    public ConnectAuthorizer(AgentIdentity identity, TokenVerificationKeys keys, OrchestratorKeySet keySet, IAuthorizationAuditLog audit, TimeProvider time)
        : this(identity.NodeId, keys, keySet, audit, time)
    {
    }

    internal ConnectAuthorizer(NodeId node, TokenVerificationKeys keys, OrchestratorKeySet keySet, IAuthorizationAuditLog? audit, TimeProvider time)
    {
        Audience = node.Value;
        _keySet = keySet;
        _validator = new TokenValidator(new TokenValidatorOptions { Audience = Audience }, keys, revocations: null, audit, time);
    }

    /// <summary>This node's id: the audience tokens must name.</summary>
    public string Audience { get; }

    public async ValueTask<TokenValidationResult<ConnectTokenClaims>> AuthorizeAsync(string token, VmId vm, TokenScopes scope, CancellationToken cancellationToken = default)
    {
        var result = _validator.Authorize(token, vm, scope);
        if (result.Status == TokenStatus.UnknownKey && await _keySet.RefreshForUnknownKeyAsync(cancellationToken).ConfigureAwait(false))
        {
            result = _validator.Authorize(token, vm, scope);
        }

        return result;
    }
}
