using DeCloud.Core.Model;

namespace DeCloud.Core.Security;

/// <summary>The role a node plays, carried in its node token.</summary>
public enum NodeRole
{
    /// <summary>A host agent that runs VMs.</summary>
    Agent = 1,

    /// <summary>A relay that exposes public ports for hosts behind CGNAT.</summary>
    Relay = 2,
}

/// <summary>The verified claims of a connect token: who may reach which VM or project, how, and until when.</summary>
public sealed class ConnectTokenClaims
{
    internal ConnectTokenClaims(string issuer, WalletAddress subject, string audience, VmId? vm, string? project, TokenScopes scopes,
        DateTimeOffset issuedAt, DateTimeOffset notBefore, DateTimeOffset expiresAt, Guid tokenId)
    {
        Issuer = issuer;
        Subject = subject;
        Audience = audience;
        Vm = vm;
        Project = project;
        Scopes = scopes;
        IssuedAt = issuedAt;
        NotBefore = notBefore;
        ExpiresAt = expiresAt;
        TokenId = tokenId;
    }

    /// <summary>The issuing orchestrator (<c>iss</c>).</summary>
    public string Issuer { get; }

    /// <summary>The wallet the token was issued to (<c>sub</c>).</summary>
    public WalletAddress Subject { get; }

    /// <summary>The host or relay that must accept it (<c>aud</c>).</summary>
    public string Audience { get; }

    /// <summary>The VM it grants access to (<c>vm</c>), or null for a project token.</summary>
    public VmId? Vm { get; }

    /// <summary>The project it grants access to (<c>prj</c>), or null for a VM token.</summary>
    public string? Project { get; }

    /// <summary>What it allows (<c>scp</c>).</summary>
    public TokenScopes Scopes { get; }

    /// <summary>When it was issued (<c>iat</c>).</summary>
    public DateTimeOffset IssuedAt { get; }

    /// <summary>When it becomes valid (<c>nbf</c>).</summary>
    public DateTimeOffset NotBefore { get; }

    /// <summary>When it expires (<c>exp</c>).</summary>
    public DateTimeOffset ExpiresAt { get; }

    /// <summary>Its unique id (<c>jti</c>), the handle for revocation.</summary>
    public Guid TokenId { get; }

    /// <summary>True when the token names <paramref name="vm"/> and carries every scope in <paramref name="scope"/>.</summary>
    public bool Grants(VmId vm, TokenScopes scope) => Vm == vm && scope != TokenScopes.None && (Scopes & scope) == scope;

    /// <summary>True when the token names <paramref name="project"/> and carries every scope in <paramref name="scope"/>.</summary>
    public bool GrantsProject(string project, TokenScopes scope) =>
        Project is not null && string.Equals(Project, project, StringComparison.Ordinal) && scope != TokenScopes.None && (Scopes & scope) == scope;
}

/// <summary>
/// The verified claims of a node token: the identity an agent or relay proves to the orchestrator.
/// It carries no VM, project or scope, so it can never stand in for a user's connect token.
/// </summary>
public sealed class NodeTokenClaims
{
    internal NodeTokenClaims(string issuer, NodeId node, string audience, WalletAddress operatorWallet, NodeRole role,
        DateTimeOffset issuedAt, DateTimeOffset notBefore, DateTimeOffset expiresAt, Guid tokenId)
    {
        Issuer = issuer;
        Node = node;
        Audience = audience;
        OperatorWallet = operatorWallet;
        Role = role;
        IssuedAt = issuedAt;
        NotBefore = notBefore;
        ExpiresAt = expiresAt;
        TokenId = tokenId;
    }

    /// <summary>The issuing orchestrator (<c>iss</c>).</summary>
    public string Issuer { get; }

    /// <summary>The node (<c>sub</c>).</summary>
    public NodeId Node { get; }

    /// <summary>The orchestrator that must accept it (<c>aud</c>).</summary>
    public string Audience { get; }

    /// <summary>The operator wallet that signed the node's registration (<c>wal</c>).</summary>
    public WalletAddress OperatorWallet { get; }

    /// <summary>Agent or relay (<c>rol</c>).</summary>
    public NodeRole Role { get; }

    /// <summary>When it was issued (<c>iat</c>).</summary>
    public DateTimeOffset IssuedAt { get; }

    /// <summary>When it becomes valid (<c>nbf</c>).</summary>
    public DateTimeOffset NotBefore { get; }

    /// <summary>When it expires (<c>exp</c>).</summary>
    public DateTimeOffset ExpiresAt { get; }

    /// <summary>Its unique id (<c>jti</c>).</summary>
    public Guid TokenId { get; }
}

/// <summary>The outcome of validating a token: a status, its reason, and the claims when valid.</summary>
/// <typeparam name="TClaims"><see cref="ConnectTokenClaims"/> or <see cref="NodeTokenClaims"/>.</typeparam>
public readonly struct TokenValidationResult<TClaims>
    where TClaims : class
{
    internal TokenValidationResult(TokenStatus status, TClaims? claims)
    {
        Status = status;
        Claims = claims;
    }

    /// <summary><see cref="TokenStatus.Valid"/> or why the token was refused.</summary>
    public TokenStatus Status { get; }

    /// <summary>The claims; set when the signature verified (also for an expired, revoked or not-granted token), else null.</summary>
    public TClaims? Claims { get; }

    /// <summary>True when <see cref="Status"/> is <see cref="TokenStatus.Valid"/>.</summary>
    public bool IsValid => Status == TokenStatus.Valid;

    /// <summary>A short sentence saying why (constant text).</summary>
    public string Reason => TokenStatusText.Describe(Status);

    /// <inheritdoc />
    public override string ToString() => Reason;
}
