using DeCloud.Agent.Control;
using DeCloud.Core.Model;
using DeCloud.Core.Security;

namespace DeCloud.Agent.Security;

/// <summary>
/// Checks tokens addressed to this node with Core's <see cref="TokenValidator"/>: signed by a key in the
/// orchestrator's published set, issued by the orchestrator, addressed to this node (its node id is the
/// audience, also when it acts as the relay of a NAT'd node), unexpired, and granting what is asked: a connect
/// token's scope on a VM, a relay token's node (tunnels into this node's relay role), a move token's VM, volume
/// and move (volume streams into this node's receiver).
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

    public ValueTask<TokenValidationResult<ConnectTokenClaims>> AuthorizeAsync(string token, VmId vm, TokenScopes scope, CancellationToken cancellationToken = default) =>
        CheckAsync(() => _validator.Authorize(token, vm, scope), cancellationToken);

    /// <summary>A relay token presented by a NAT'd node opening a tunnel to this relay: a node token addressed to this node.</summary>
    public ValueTask<TokenValidationResult<NodeTokenClaims>> ValidateRelayTokenAsync(string token, CancellationToken cancellationToken = default) =>
        CheckAsync(() => _validator.ValidateNodeToken(token), cancellationToken);

    /// <summary>A move token presented by a source node before it streams a volume into this node.</summary>
    public ValueTask<TokenValidationResult<VolumeMoveTokenClaims>> AuthorizeVolumeMoveAsync(string token, VmId vm, string volume, string moveId,
        CancellationToken cancellationToken = default) =>
        CheckAsync(() => _validator.AuthorizeVolumeMove(token, vm, volume, moveId), cancellationToken);

    // A token naming a key this node has not seen yet: fetch the key set once more (rate limited) and check again.
    private async ValueTask<TokenValidationResult<T>> CheckAsync<T>(Func<TokenValidationResult<T>> check, CancellationToken cancellationToken)
        where T : class
    {
        var result = check();
        if (result.Status == TokenStatus.UnknownKey && await _keySet.RefreshForUnknownKeyAsync(cancellationToken).ConfigureAwait(false))
        {
            result = check();
        }

        return result;
    }
}
