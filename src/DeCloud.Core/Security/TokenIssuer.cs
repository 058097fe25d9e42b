using System.Buffers;
using System.Text.Json;
using DeCloud.Core.Model;

namespace DeCloud.Core.Security;

/// <summary>Options of a <see cref="TokenIssuer"/>.</summary>
public sealed class TokenIssuerOptions
{
    /// <summary>The issuer name written to <c>iss</c>; validators must expect the same. Default <c>decloud</c>.</summary>
    public string Issuer { get; set; } = "decloud";

    /// <summary>The lifetime of a connect token when the request names none. Default 5 minutes.</summary>
    public TimeSpan DefaultLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The longest connect-token lifetime a request may ask for. Default 60 minutes.</summary>
    public TimeSpan MaxLifetime { get; set; } = TimeSpan.FromMinutes(60);

    /// <summary>The lifetime of a node token. Default 60 minutes (the node renews it).</summary>
    public TimeSpan NodeTokenLifetime { get; set; } = TimeSpan.FromMinutes(60);

    internal void Validate()
    {
        TokenText.RequireId(Issuer, nameof(Issuer));
        if (MaxLifetime < TimeSpan.FromMinutes(1) || MaxLifetime > TimeSpan.FromDays(1))
        {
            throw Model.Validate.Fail(nameof(MaxLifetime), $"{MaxLifetime} is out of range; expected 1 minute to 1 day.");
        }

        if (DefaultLifetime < TimeSpan.FromSeconds(10) || DefaultLifetime > MaxLifetime)
        {
            throw Model.Validate.Fail(nameof(DefaultLifetime), $"{DefaultLifetime} is out of range; expected 10 seconds to MaxLifetime ({MaxLifetime}).");
        }

        if (NodeTokenLifetime < TimeSpan.FromMinutes(1) || NodeTokenLifetime > TimeSpan.FromDays(1))
        {
            throw Model.Validate.Fail(nameof(NodeTokenLifetime), $"{NodeTokenLifetime} is out of range; expected 1 minute to 1 day.");
        }
    }
}

/// <summary>What a connect token should grant: exactly one of <see cref="Vm"/> and <see cref="Project"/>.</summary>
/// <param name="Subject">The signed-in wallet.</param>
/// <param name="Audience">The host or relay id that must accept the token.</param>
/// <param name="Scopes">What it allows (at least one).</param>
public sealed record ConnectTokenRequest(WalletAddress Subject, string Audience, TokenScopes Scopes)
{
    /// <summary>The VM it grants access to.</summary>
    public VmId? Vm { get; init; }

    /// <summary>The project it grants access to (letters, digits, <c>.</c>, <c>_</c>, <c>-</c>; at most 64).</summary>
    public string? Project { get; init; }

    /// <summary>Its lifetime (default <see cref="TokenIssuerOptions.DefaultLifetime"/>).</summary>
    public TimeSpan? Lifetime { get; init; }
}

/// <summary>A freshly issued token.</summary>
/// <param name="Token">The PASETO v4.public token.</param>
/// <param name="TokenId">Its <c>jti</c>, for revocation.</param>
/// <param name="KeyId">The signing key id in its footer.</param>
/// <param name="ExpiresAt">Its expiry.</param>
public sealed record IssuedToken(string Token, Guid TokenId, string KeyId, DateTimeOffset ExpiresAt);

/// <summary>
/// Issues connect tokens (orchestrator side) signed with the <see cref="TokenKeyRing"/>'s current key.
/// Node tokens come from <see cref="NodeCredentials"/> after a verified registration.
/// </summary>
public sealed class TokenIssuer
{
    internal const string ConnectKind = "connect";
    internal const string NodeKind = "node";
    internal const string MoveKind = "move";

    private readonly TokenKeyRing _keys;
    private readonly TokenIssuerOptions _options;
    private readonly TimeProvider _time;

    /// <summary>Creates an issuer.</summary>
    public TokenIssuer(TokenKeyRing keys, TokenIssuerOptions? options = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(keys);
        _keys = keys;
        _options = options ?? new TokenIssuerOptions();
        _options.Validate();
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The issuer name (<c>iss</c>).</summary>
    public string Issuer => _options.Issuer;

    /// <summary>Issues a connect token; throws <see cref="DeCloudValidationException"/> for a bad request.</summary>
    public IssuedToken IssueConnectToken(ConnectTokenRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Subject.IsEmpty)
        {
            throw Validate.Fail("request.subject", "must be a wallet address.");
        }

        TokenText.RequireId(request.Audience, "request.audience");
        if (request.Vm.HasValue == (request.Project is not null))
        {
            throw Validate.Fail("request.vm", "name exactly one of a VM and a project.");
        }

        if (request.Project is not null)
        {
            TokenText.RequireProject(request.Project, "request.project");
        }

        if (request.Scopes == TokenScopes.None || (request.Scopes & ~TokenScopeNames.All) != 0)
        {
            throw Validate.Fail("request.scopes", $"'{request.Scopes}' is not a non-empty combination of ssh, http, terminal and port.");
        }

        var lifetime = request.Lifetime ?? _options.DefaultLifetime;
        if (lifetime <= TimeSpan.Zero || lifetime > _options.MaxLifetime)
        {
            throw Validate.Fail("request.lifetime", $"{lifetime} is out of range; expected more than 0 and at most {_options.MaxLifetime}.");
        }

        var now = Truncate(_time.GetUtcNow());
        var exp = now + lifetime;
        var jti = Guid.NewGuid();
        var token = Sign(w =>
        {
            WriteCommon(w, request.Subject.ToLowerHex(), request.Audience, ConnectKind, now, exp, jti);
            if (request.Vm is { } vm)
            {
                w.WriteString("vm", vm.ToString());
            }
            else
            {
                w.WriteString("prj", request.Project);
            }

            w.WriteStartArray("scp");
            foreach (var s in TokenScopeNames.Names(request.Scopes))
            {
                w.WriteStringValue(s);
            }

            w.WriteEndArray();
        });
        return new IssuedToken(token, jti, _keys.CurrentKeyId, exp);
    }

    /// <summary>Issues a node token: only after <see cref="NodeCredentials"/> verified the operator's signed registration.</summary>
    internal IssuedToken IssueNodeToken(NodeId node, WalletAddress operatorWallet, NodeRole role, string audience, TimeSpan? lifetime = null)
    {
        TokenText.RequireId(audience, "audience");
        var now = Truncate(_time.GetUtcNow());
        var exp = now + (lifetime ?? _options.NodeTokenLifetime);
        var jti = Guid.NewGuid();
        var token = Sign(w =>
        {
            WriteCommon(w, node.Value, audience, NodeKind, now, exp, jti);
            w.WriteString("wal", operatorWallet.ToLowerHex());
            w.WriteString("rol", role == NodeRole.Relay ? "relay" : "agent");
        });
        return new IssuedToken(token, jti, _keys.CurrentKeyId, exp);
    }

    /// <summary>
    /// Issues a relay token: a node token (kind <c>node</c>, role agent) whose audience is the relay that carries the
    /// node's public ports, so that relay can check, without contacting anyone, that a tunnel claiming
    /// <paramref name="node"/> really is that node. The orchestrator issues it only to the node itself (over its
    /// registered control stream) when it assigns the relay, and renews it before it expires.
    /// </summary>
    /// <param name="node">The node behind NAT (<c>sub</c>).</param>
    /// <param name="operatorWallet">The wallet that signed the node's registration (<c>wal</c>).</param>
    /// <param name="relayId">The relay's node id (<c>aud</c>).</param>
    /// <param name="lifetime">Its lifetime (default and maximum <see cref="TokenIssuerOptions.NodeTokenLifetime"/>).</param>
    public IssuedToken IssueRelayToken(NodeId node, WalletAddress operatorWallet, string relayId, TimeSpan? lifetime = null)
    {
        if (node.IsEmpty)
        {
            throw Validate.Fail(nameof(node), "must be a node id.");
        }

        if (operatorWallet.IsEmpty)
        {
            throw Validate.Fail(nameof(operatorWallet), "must be a wallet address.");
        }

        return IssueNodeToken(node, operatorWallet, NodeRole.Agent, relayId, CheckLifetime(lifetime, _options.NodeTokenLifetime, nameof(lifetime)));
    }

    /// <summary>
    /// Issues a volume-move token: it lets the source node of one move write one volume into the destination
    /// node's volume receiver. The destination checks it before a byte reaches its receiver, and accepts its
    /// token id for one move only.
    /// </summary>
    public IssuedToken IssueVolumeMoveToken(VolumeMoveTokenRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Source.IsEmpty)
        {
            throw Validate.Fail("request.source", "must be a node id.");
        }

        TokenText.RequireId(request.Destination, "request.destination");
        if (request.Vm.Value == Guid.Empty)
        {
            throw Validate.Fail("request.vm", "must be a VM id.");
        }

        TokenText.RequireId(request.Volume, "request.volume");
        TokenText.RequireId(request.MoveId, "request.moveId");
        var now = Truncate(_time.GetUtcNow());
        var exp = now + CheckLifetime(request.Lifetime ?? VolumeMoveTokenRequest.DefaultLifetime, _options.NodeTokenLifetime, "request.lifetime");
        var jti = Guid.NewGuid();
        var token = Sign(w =>
        {
            WriteCommon(w, request.Source.Value, request.Destination, MoveKind, now, exp, jti);
            w.WriteString("vm", request.Vm.ToString());
            w.WriteString("vol", request.Volume);
            w.WriteString("mov", request.MoveId);
        });
        return new IssuedToken(token, jti, _keys.CurrentKeyId, exp);
    }

    private static TimeSpan CheckLifetime(TimeSpan? lifetime, TimeSpan max, string field)
    {
        var value = lifetime ?? max;
        return value <= TimeSpan.Zero || value > max
            ? throw Validate.Fail(field, $"{value} is out of range; expected more than 0 and at most {max}.")
            : value;
    }

    private void WriteCommon(Utf8JsonWriter w, string subject, string audience, string kind, DateTimeOffset now, DateTimeOffset exp, Guid jti)
    {
        w.WriteString("iss", _options.Issuer);
        w.WriteString("sub", subject);
        w.WriteString("aud", audience);
        w.WriteString("kind", kind);
        w.WriteString("iat", now);
        w.WriteString("nbf", now);
        w.WriteString("exp", exp);
        w.WriteString("jti", jti.ToString("N"));
    }

    private string Sign(Action<Utf8JsonWriter> writeClaims)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            writeClaims(w);
            w.WriteEndObject();
        }

        return _keys.Sign(buffer.WrittenSpan);
    }

    // Whole seconds: ISO 8601 claims stay short and compare exactly after a round trip.
    private static DateTimeOffset Truncate(DateTimeOffset t) => new(t.UtcTicks - (t.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero);
}

/// <summary>Checks on identifiers that end up inside tokens.</summary>
internal static class TokenText
{
    public static void RequireId(string? value, string field)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 128 || !IsIdChars(value, allowColon: true))
        {
            throw Validate.Fail(field, $"'{value}' is not an id; expected 1-128 letters, digits, '.', '_', '-' or ':'.");
        }
    }

    public static void RequireProject(string value, string field)
    {
        if (value.Length is 0 or > 64 || !IsIdChars(value, allowColon: false))
        {
            throw Validate.Fail(field, $"'{value}' is not a project id; expected 1-64 letters, digits, '.', '_' or '-'.");
        }
    }

    private static bool IsIdChars(string value, bool allowColon)
    {
        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' || (allowColon && c == ':')))
            {
                return false;
            }
        }

        return true;
    }
}
