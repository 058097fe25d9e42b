using System.Diagnostics.Metrics;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Orchestrator.Storage;

namespace DeCloud.Orchestrator.Security;

/// <summary>Why a connect token was not issued.</summary>
internal enum ConnectTokenOutcome
{
    Ok,
    NotFound,
    Conflict,
}

/// <summary>A connect token as the API returns it.</summary>
/// <param name="Token">The PASETO v4.public token to present to the host (or relay).</param>
/// <param name="TokenId">Its id (<c>jti</c>), for revocation and audit.</param>
/// <param name="KeyId">The signing key's id (<c>k4.pid</c>); hosts find it in the public key set.</param>
/// <param name="Audience">The node that accepts it: the VM's host, or the relay in front of a NAT'd host.</param>
/// <param name="Via"><c>host</c> or <c>relay</c>.</param>
/// <param name="VmId">The VM it grants access to.</param>
/// <param name="NodeId">The node the VM runs on.</param>
/// <param name="Scopes">What it grants: <c>ssh</c>, <c>http</c>, <c>terminal</c>, <c>port</c>.</param>
/// <param name="ExpiresAt">When it stops being accepted.</param>
internal sealed record ConnectTokenView(string Token, Guid TokenId, string KeyId, string Audience, string Via, string VmId, string NodeId,
    IReadOnlyList<string> Scopes, DateTimeOffset ExpiresAt);

/// <summary>
/// Issues connect tokens for a wallet's VM with Core's <see cref="TokenIssuer"/>. The audience is the node
/// the client's connection reaches first and that therefore checks the token: the VM's host when it is
/// public, the relay assigned to it when the host is behind NAT (clients cannot reach the host itself).
/// </summary>
internal sealed class ConnectTokenService(OrchestratorStore store, TokenIssuer issuer, IMeterFactory meterFactory)
{
    private readonly Counter<long> _issued = meterFactory.Create(OrchestratorMetrics.MeterName)
        .CreateCounter<long>("decloud.orchestrator.connect_tokens.issued", "{token}", "Connect tokens issued, by via (host or relay).");

    /// <summary>The scope names the API accepts, in their wire spelling.</summary>
    public static readonly IReadOnlyDictionary<string, TokenScopes> ScopeNames = new Dictionary<string, TokenScopes>(StringComparer.Ordinal)
    {
        ["ssh"] = TokenScopes.Ssh,
        ["http"] = TokenScopes.Http,
        ["terminal"] = TokenScopes.Terminal,
        ["port"] = TokenScopes.Port,
    };

    public (ConnectTokenOutcome Outcome, ConnectTokenView? Token, string? Detail) Issue(WalletAddress wallet, VmId vmId, TokenScopes scopes, TimeSpan lifetime)
    {
        var vm = store.GetVm(vmId);
        if (vm is null || vm.Owner != wallet)
        {
            return (ConnectTokenOutcome.NotFound, null, null);
        }

        if (vm.State is VmStates.Deleting or VmStates.Deleted or VmStates.Failed)
        {
            return (ConnectTokenOutcome.Conflict, null, $"VM {vmId} is {vm.State}; there is nothing to connect to.");
        }

        var node = store.GetNode(vm.NodeId);
        if (node is null)
        {
            return (ConnectTokenOutcome.Conflict, null, $"the VM's node {vm.NodeId} is not registered.");
        }

        var audience = node.Id.Value;
        var via = "host";
        if (node.BehindNat)
        {
            if (node.RelayNodeId is null)
            {
                return (ConnectTokenOutcome.Conflict, null, $"node {node.Id} is behind NAT and has no relay assigned yet; try again when it is online.");
            }

            audience = node.RelayNodeId;
            via = "relay";
        }

        var issued = issuer.IssueConnectToken(new ConnectTokenRequest(wallet, audience, scopes) { Vm = vmId, Lifetime = lifetime });
        _issued.Add(1, new KeyValuePair<string, object?>("via", via));
        return (ConnectTokenOutcome.Ok, new ConnectTokenView(issued.Token, issued.TokenId, issued.KeyId, audience, via, vmId.ToString(),
            node.Id.Value, [.. ScopeNames.Where(s => scopes.HasFlag(s.Value)).Select(s => s.Key)], issued.ExpiresAt), null);
    }
}
