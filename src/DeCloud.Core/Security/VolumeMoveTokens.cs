using DeCloud.Core.Model;

namespace DeCloud.Core.Security;

/// <summary>What a volume-move token grants: the source node may write one volume of one VM into the destination, for one move.</summary>
/// <param name="Source">The node sending the volume (<c>sub</c>).</param>
/// <param name="Destination">The node receiving it: the token's audience (<c>aud</c>).</param>
/// <param name="Vm">The VM the volume belongs to (<c>vm</c>).</param>
/// <param name="Volume">The volume's name (<c>vol</c>; 1-128 letters, digits, <c>.</c>, <c>_</c>, <c>-</c> or <c>:</c>).</param>
/// <param name="MoveId">The move (<c>mov</c>; same characters).</param>
public sealed record VolumeMoveTokenRequest(NodeId Source, string Destination, VmId Vm, string Volume, string MoveId)
{
    /// <summary>The lifetime when <see cref="Lifetime"/> is not set: 30 minutes (a move's first connection must start within it).</summary>
    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromMinutes(30);

    /// <summary>Its lifetime (default <see cref="DefaultLifetime"/>, at most <see cref="TokenIssuerOptions.NodeTokenLifetime"/>).</summary>
    public TimeSpan? Lifetime { get; init; }
}

/// <summary>The verified claims of a volume-move token (kind <c>move</c>).</summary>
public sealed class VolumeMoveTokenClaims
{
    internal VolumeMoveTokenClaims(string issuer, NodeId source, string audience, VmId vm, string volume, string moveId,
        DateTimeOffset issuedAt, DateTimeOffset notBefore, DateTimeOffset expiresAt, Guid tokenId)
    {
        Issuer = issuer;
        Source = source;
        Audience = audience;
        Vm = vm;
        Volume = volume;
        MoveId = moveId;
        IssuedAt = issuedAt;
        NotBefore = notBefore;
        ExpiresAt = expiresAt;
        TokenId = tokenId;
    }

    /// <summary>The issuing orchestrator (<c>iss</c>).</summary>
    public string Issuer { get; }

    /// <summary>The node sending the volume (<c>sub</c>).</summary>
    public NodeId Source { get; }

    /// <summary>The node receiving it (<c>aud</c>).</summary>
    public string Audience { get; }

    /// <summary>The VM (<c>vm</c>).</summary>
    public VmId Vm { get; }

    /// <summary>The volume (<c>vol</c>).</summary>
    public string Volume { get; }

    /// <summary>The move (<c>mov</c>).</summary>
    public string MoveId { get; }

    /// <summary>When it was issued (<c>iat</c>).</summary>
    public DateTimeOffset IssuedAt { get; }

    /// <summary>When it becomes valid (<c>nbf</c>).</summary>
    public DateTimeOffset NotBefore { get; }

    /// <summary>When it expires (<c>exp</c>).</summary>
    public DateTimeOffset ExpiresAt { get; }

    /// <summary>Its unique id (<c>jti</c>): a destination accepts it for one move only.</summary>
    public Guid TokenId { get; }

    /// <summary>True when the token names exactly this VM, volume and move.</summary>
    public bool Grants(VmId vm, string volume, string moveId) =>
        Vm == vm && string.Equals(Volume, volume, StringComparison.Ordinal) && string.Equals(MoveId, moveId, StringComparison.Ordinal);
}
