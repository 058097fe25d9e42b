using DeCloud.Core.Model;
using DeCloud.Core.Security.Siwe;

namespace DeCloud.Core.Security;

/// <summary>A node's registration: its machine id and role, and a SIWE message signed by its operator's wallet.</summary>
/// <param name="MachineId">The node's machine id (<c>/etc/machine-id</c>); with the wallet it determines the <see cref="NodeId"/>.</param>
/// <param name="Role">Agent or relay.</param>
/// <param name="Message">The EIP-4361 message (from <see cref="NodeCredentials.CreateRegistrationMessage"/>).</param>
/// <param name="Signature">The operator wallet's <c>personal_sign</c> signature of <paramref name="Message"/>.</param>
public sealed record NodeRegistrationRequest(string MachineId, NodeRole Role, string Message, string Signature);

/// <summary>Why a node registration was refused (or <see cref="Registered"/>).</summary>
public enum NodeRegistrationStatus
{
    /// <summary>Registered; a node token was issued.</summary>
    Registered = 0,

    /// <summary>The request itself is malformed (empty machine id, unknown role).</summary>
    InvalidRequest,

    /// <summary>The signed message was refused (see <see cref="NodeRegistrationResult.SignInStatus"/>).</summary>
    SignInRefused,

    /// <summary>The signed message does not name this node and role in its resources.</summary>
    NodeNotAuthorized,
}

/// <summary>The outcome of a node registration.</summary>
public sealed class NodeRegistrationResult
{
    internal NodeRegistrationResult(NodeRegistrationStatus status, SiweStatus signInStatus, string reason, NodeId node, IssuedToken? token)
    {
        Status = status;
        SignInStatus = signInStatus;
        Reason = reason;
        Node = node;
        Token = token;
    }

    /// <summary>Registered, or why not.</summary>
    public NodeRegistrationStatus Status { get; }

    /// <summary>The result of verifying the signed message.</summary>
    public SiweStatus SignInStatus { get; }

    /// <summary>What is wrong (or <c>registered</c>).</summary>
    public string Reason { get; }

    /// <summary>The node id derived from the machine id and the operator wallet (default when unknown).</summary>
    public NodeId Node { get; }

    /// <summary>The node token (kind <c>node</c>, audience the orchestrator), when registered.</summary>
    public IssuedToken? Token { get; }
}

/// <summary>
/// Node credentials on the orchestrator: an agent or relay proves its operator's wallet with a signed
/// Sign-In with Ethereum message that names the node and role in its resources
/// (<c>urn:decloud:node:&lt;id&gt;</c>, <c>urn:decloud:role:agent|relay</c>), and gets a node token back.
/// A node token is of kind <c>node</c> with the orchestrator as audience: hosts and relays refuse it
/// as a connect token, and holding one gives no way to mint user or project tokens (only the
/// orchestrator's key ring signs).
/// </summary>
public sealed class NodeCredentials
{
    private readonly SiweSignIn _signIn;
    private readonly TokenIssuer _issuer;
    private readonly string _audience;

    /// <summary>Creates the service.</summary>
    /// <param name="signIn">Verifies the operator's signed message and consumes its nonce.</param>
    /// <param name="issuer">Issues the node token.</param>
    /// <param name="orchestratorAudience">The orchestrator's own id: the audience of node tokens.</param>
    public NodeCredentials(SiweSignIn signIn, TokenIssuer issuer, string orchestratorAudience)
    {
        ArgumentNullException.ThrowIfNull(signIn);
        ArgumentNullException.ThrowIfNull(issuer);
        TokenText.RequireId(orchestratorAudience, nameof(orchestratorAudience));
        _signIn = signIn;
        _issuer = issuer;
        _audience = orchestratorAudience;
    }

    /// <summary>The resource naming a node.</summary>
    public static string NodeResource(NodeId node) => "urn:decloud:node:" + node.Value;

    /// <summary>The resource naming a role.</summary>
    public static string RoleResource(NodeRole role) => role == NodeRole.Relay ? "urn:decloud:role:relay" : "urn:decloud:role:agent";

    /// <summary>The registration message an operator signs for a node (agent side).</summary>
    public static SiweMessage CreateRegistrationMessage(SiweOptions server, WalletAddress operatorWallet, string machineId, NodeRole role,
        string nonce, DateTimeOffset issuedAt)
    {
        ArgumentNullException.ThrowIfNull(server);
        var node = NodeId.FromMachine(machineId, operatorWallet);
        return new SiweMessage
        {
            Scheme = server.Scheme,
            Domain = server.Domain,
            Address = operatorWallet,
            Statement = $"Register DeCloud {(role == NodeRole.Relay ? "relay" : "agent")} node",
            Uri = server.Uri,
            ChainId = server.ChainId,
            Nonce = nonce,
            IssuedAt = issuedAt,
            Resources = [NodeResource(node), RoleResource(role)],
        };
    }

    /// <summary>Verifies a registration (consuming its nonce) and issues a node token.</summary>
    public async ValueTask<NodeRegistrationResult> RegisterAsync(NodeRegistrationRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (string.IsNullOrWhiteSpace(request.MachineId) || request.MachineId.Length > 256 || request.Role is not (NodeRole.Agent or NodeRole.Relay))
        {
            return new NodeRegistrationResult(NodeRegistrationStatus.InvalidRequest, SiweStatus.Valid,
                "machine id must be 1-256 characters and role agent or relay.", default, null);
        }

        var signIn = await _signIn.SignInAsync(request.Message, request.Signature, cancellationToken).ConfigureAwait(false);
        if (!signIn.IsSignedIn)
        {
            return new NodeRegistrationResult(NodeRegistrationStatus.SignInRefused, signIn.Status, signIn.Reason, default, null);
        }

        var wallet = signIn.Session!.Wallet;
        var node = NodeId.FromMachine(request.MachineId, wallet);
        var resources = signIn.Session.Resources;
        if (!resources.Contains(NodeResource(node)) || !resources.Contains(RoleResource(request.Role)))
        {
            return new NodeRegistrationResult(NodeRegistrationStatus.NodeNotAuthorized, SiweStatus.Valid,
                $"the signed message does not list {NodeResource(node)} and {RoleResource(request.Role)} in its resources.", node, null);
        }

        var token = _issuer.IssueNodeToken(node, wallet, request.Role, _audience);
        return new NodeRegistrationResult(NodeRegistrationStatus.Registered, SiweStatus.Valid, "registered", node, token);
    }
}
