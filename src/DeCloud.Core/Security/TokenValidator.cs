using System.Buffers;
using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using DeCloud.Core.Model;
using DeCloud.Core.Security.Paseto;

namespace DeCloud.Core.Security;

/// <summary>Options of a <see cref="TokenValidator"/>.</summary>
public sealed class TokenValidatorOptions
{
    /// <summary>The issuer to accept (<c>iss</c>). Default <c>decloud</c>.</summary>
    public string Issuer { get; set; } = "decloud";

    /// <summary>This host's, relay's or orchestrator's id: tokens for any other audience are refused. Required.</summary>
    public string Audience { get; set; } = string.Empty;

    /// <summary>Tolerated clock difference for <c>iat</c>, <c>nbf</c> and <c>exp</c>. Default 30 seconds; at most 5 minutes.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest token lifetime accepted. Default 60 minutes.</summary>
    public TimeSpan MaxLifetime { get; set; } = TimeSpan.FromMinutes(60);

    /// <summary>Tokens longer than this many characters are refused before decoding. Default 4096.</summary>
    public int MaxTokenLength { get; set; } = 4096;

    internal void Validate()
    {
        TokenText.RequireId(Issuer, nameof(Issuer));
        TokenText.RequireId(Audience, nameof(Audience));
        if (ClockSkew < TimeSpan.Zero || ClockSkew > TimeSpan.FromMinutes(5))
        {
            throw Model.Validate.Fail(nameof(ClockSkew), $"{ClockSkew} is out of range; expected 0 to 5 minutes.");
        }

        if (MaxLifetime < TimeSpan.FromMinutes(1) || MaxLifetime > TimeSpan.FromDays(1))
        {
            throw Model.Validate.Fail(nameof(MaxLifetime), $"{MaxLifetime} is out of range; expected 1 minute to 1 day.");
        }

        Model.Validate.Range(MaxTokenLength, 128, 65_536, nameof(MaxTokenLength));
    }
}

/// <summary>
/// Validates DeCloud tokens locally on a host, relay or orchestrator: header, key lookup by key id,
/// Ed25519 signature, claims, times and revocation, on every call and without contacting anyone.
/// Every malformed or hostile token yields a typed <see cref="TokenStatus"/>, never an exception.
/// </summary>
public sealed class TokenValidator
{
    private const int MaxFooterBytes = 256;
    private const int MaxKeyIdChars = 128;

    private readonly TokenValidatorOptions _options;
    private readonly TokenVerificationKeys _keys;
    private readonly TokenRevocationList _revocations;
    private readonly IAuthorizationAuditLog? _audit;
    private readonly TimeProvider _time;
    private readonly byte[] _issuer;
    private readonly byte[] _audience;

    /// <summary>Creates a validator.</summary>
    /// <param name="options">Issuer, own audience id, clock skew, limits.</param>
    /// <param name="keys">The verification keys fetched from the orchestrator.</param>
    /// <param name="revocations">The revocations pushed by the orchestrator (null for none).</param>
    /// <param name="audit">Where <see cref="Authorize(ReadOnlySpan{char}, VmId, TokenScopes)"/> records its decisions (null for none).</param>
    /// <param name="timeProvider">The clock (default system).</param>
    public TokenValidator(TokenValidatorOptions options, TokenVerificationKeys keys, TokenRevocationList? revocations = null,
        IAuthorizationAuditLog? audit = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(keys);
        options.Validate();
        _options = options;
        _keys = keys;
        _time = timeProvider ?? TimeProvider.System;
        _revocations = revocations ?? new TokenRevocationList(_time);
        _audit = audit;
        _issuer = Encoding.UTF8.GetBytes(options.Issuer);
        _audience = Encoding.UTF8.GetBytes(options.Audience);
    }

    /// <summary>Validates a connect token.</summary>
    public TokenValidationResult<ConnectTokenClaims> ValidateConnectToken(ReadOnlySpan<char> token)
    {
        var status = Open(token, TokenIssuer.ConnectKind, out var claims);
        SecurityMetrics.TokenValidated(status);
        return new TokenValidationResult<ConnectTokenClaims>(status, claims as ConnectTokenClaims);
    }

    /// <summary>Validates a connect token and checks it grants <paramref name="scope"/> on <paramref name="vm"/>; audited.</summary>
    public TokenValidationResult<ConnectTokenClaims> Authorize(ReadOnlySpan<char> token, VmId vm, TokenScopes scope)
    {
        var result = ValidateConnectToken(token);
        if (result.IsValid && !result.Claims!.Grants(vm, scope))
        {
            result = new TokenValidationResult<ConnectTokenClaims>(TokenStatus.NotGranted, result.Claims);
        }

        Audit("token", result.Status, result.Claims?.Subject.ToLowerHex(), vm, null, scope);
        return result;
    }

    /// <summary>Validates a connect token and checks it grants <paramref name="scope"/> on <paramref name="project"/>; audited.</summary>
    public TokenValidationResult<ConnectTokenClaims> AuthorizeProject(ReadOnlySpan<char> token, string project, TokenScopes scope)
    {
        ArgumentNullException.ThrowIfNull(project);
        var result = ValidateConnectToken(token);
        if (result.IsValid && !result.Claims!.GrantsProject(project, scope))
        {
            result = new TokenValidationResult<ConnectTokenClaims>(TokenStatus.NotGranted, result.Claims);
        }

        Audit("token", result.Status, result.Claims?.Subject.ToLowerHex(), null, project, scope);
        return result;
    }

    /// <summary>Validates a node token (orchestrator side: the audience is the orchestrator's id); audited.</summary>
    public TokenValidationResult<NodeTokenClaims> ValidateNodeToken(ReadOnlySpan<char> token)
    {
        var status = Open(token, TokenIssuer.NodeKind, out var claims);
        SecurityMetrics.TokenValidated(status);
        var node = claims as NodeTokenClaims;
        Audit("node-token", status, node?.Node.Value, null, null, TokenScopes.None);
        return new TokenValidationResult<NodeTokenClaims>(status, node);
    }

    /// <summary>
    /// Validates a volume-move token (destination side: the audience is this node's id) and checks it names
    /// <paramref name="vm"/>, <paramref name="volume"/> and <paramref name="moveId"/>; audited. A valid token for
    /// another move or volume is <see cref="TokenStatus.NotGranted"/>.
    /// </summary>
    public TokenValidationResult<VolumeMoveTokenClaims> AuthorizeVolumeMove(ReadOnlySpan<char> token, VmId vm, string volume, string moveId)
    {
        ArgumentNullException.ThrowIfNull(volume);
        ArgumentNullException.ThrowIfNull(moveId);
        var status = Open(token, TokenIssuer.MoveKind, out var raw);
        var claims = raw as VolumeMoveTokenClaims;
        if (status == TokenStatus.Valid && !claims!.Grants(vm, volume, moveId))
        {
            status = TokenStatus.NotGranted;
        }

        SecurityMetrics.TokenValidated(status);
        Audit("move-token", status, claims?.Source.Value, vm, null, TokenScopes.None);
        return new TokenValidationResult<VolumeMoveTokenClaims>(status, claims);
    }

    private void Audit(string source, TokenStatus status, string? subject, VmId? vm, string? project, TokenScopes scope) =>
        _audit?.Record(new AuthorizationAuditEntry(_time.GetUtcNow(), status == TokenStatus.Valid ? AuthorizationOutcome.Allow : AuthorizationOutcome.Deny,
            source, TokenStatusText.Describe(status), subject, vm, project, scope));

    private TokenStatus Open(ReadOnlySpan<char> token, string expectedKind, out object? claims)
    {
        claims = null;
        if (token.IsEmpty)
        {
            return TokenStatus.Malformed;
        }

        if (token.Length > _options.MaxTokenLength)
        {
            return TokenStatus.Oversized;
        }

        var status = PasetoV4Public.Split(token, out var body, out var footerChars);
        if (status != TokenStatus.Valid)
        {
            return status;
        }

        if (footerChars.IsEmpty)
        {
            return TokenStatus.MissingKeyId;
        }

        if (StrictBase64Url.DecodedLength(footerChars.Length) is < 0 or > MaxFooterBytes)
        {
            return StrictBase64Url.DecodedLength(footerChars.Length) < 0 ? TokenStatus.BadEncoding : TokenStatus.MissingKeyId;
        }

        Span<byte> footer = stackalloc byte[MaxFooterBytes];
        if (!StrictBase64Url.TryDecode(footerChars, footer, out var footerLength))
        {
            return TokenStatus.BadEncoding;
        }

        footer = footer[..footerLength];
        Span<char> kid = stackalloc char[MaxKeyIdChars];
        if (!TryReadKeyId(footer, kid, out var kidLength))
        {
            return TokenStatus.MissingKeyId;
        }

        var key = _keys.Find(kid[..kidLength]);
        if (key is null)
        {
            return TokenStatus.UnknownKey;
        }

        var now = _time.GetUtcNow();
        if (key.IsRetiredAt(now))
        {
            return TokenStatus.RetiredKey;
        }

        byte[]? scratch = null;
        try
        {
            status = PasetoV4Public.VerifyBody(body, footer, default, key.Key, ref scratch, out var message);
            return status != TokenStatus.Valid ? status : CheckClaims(message, expectedKind, now, out claims);
        }
        finally
        {
            if (scratch is not null)
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }
        }
    }

    private TokenStatus CheckClaims(ReadOnlySpan<byte> json, string expectedKind, DateTimeOffset now, out object? claims)
    {
        claims = null;
        if (!ClaimsReader.TryRead(json, out var c) || c.ExpiresAt <= c.IssuedAt || c.NotBefore < c.IssuedAt)
        {
            return TokenStatus.BadClaims;
        }

        if (!c.Issuer.SequenceEqual(_issuer))
        {
            return TokenStatus.WrongIssuer;
        }

        var isConnect = c.Kind.SequenceEqual("connect"u8);
        var isNode = c.Kind.SequenceEqual("node"u8);
        var isMove = c.Kind.SequenceEqual("move"u8);
        if (!(isConnect || isNode || isMove))
        {
            return TokenStatus.BadClaims;
        }

        var kind = isConnect ? TokenIssuer.ConnectKind : isNode ? TokenIssuer.NodeKind : TokenIssuer.MoveKind;
        if (!string.Equals(kind, expectedKind, StringComparison.Ordinal))
        {
            return TokenStatus.WrongTokenKind;
        }

        if (!c.Audience.SequenceEqual(_audience))
        {
            return TokenStatus.WrongAudience;
        }

        if (!Utf8Parser.TryParse(c.TokenId, out Guid jti, out var jtiLength, 'N') || jtiLength != c.TokenId.Length)
        {
            return TokenStatus.BadClaims;
        }

        // Materialize the claims before the time and revocation checks, so a refused-but-authentic
        // token still reports whose it was (for the audit log).
        var status = isConnect ? MaterializeConnect(ref c, jti, out claims) : isNode ? MaterializeNode(ref c, jti, out claims) : MaterializeMove(ref c, jti, out claims);
        if (status != TokenStatus.Valid)
        {
            return status;
        }

        var skew = _options.ClockSkew;
        if (c.ExpiresAt - c.IssuedAt > _options.MaxLifetime)
        {
            return TokenStatus.LifetimeTooLong;
        }

        if (c.IssuedAt > now + skew)
        {
            return TokenStatus.IssuedInFuture;
        }

        if (c.NotBefore > now + skew)
        {
            return TokenStatus.NotYetValid;
        }

        if (c.ExpiresAt + skew <= now)
        {
            return TokenStatus.Expired;
        }

        if (_revocations.IsTokenRevoked(jti))
        {
            return TokenStatus.Revoked;
        }

        Span<char> subject = stackalloc char[c.Subject.Length];
        Encoding.ASCII.GetChars(c.Subject, subject);
        return _revocations.IsSubjectRevoked(subject, c.IssuedAt) ? TokenStatus.SubjectRevoked : TokenStatus.Valid;
    }

    private TokenStatus MaterializeConnect(ref RawClaims c, Guid jti, out object? claims)
    {
        claims = null;
        if ((c.Seen & (ClaimsReader.Scp)) == 0 || ((c.Seen & ClaimsReader.Vm) != 0) == ((c.Seen & ClaimsReader.Prj) != 0)
            || (c.Seen & (ClaimsReader.Wal | ClaimsReader.Rol | ClaimsReader.Vol | ClaimsReader.Mov)) != 0 || !IsLowerHex(c.Subject, 2, 40) || c.Subject[0] != '0' || c.Subject[1] != 'x')
        {
            return TokenStatus.BadClaims;
        }

        VmId? vm = null;
        string? project = null;
        if (!c.Vm.IsEmpty)
        {
            if (!Utf8Parser.TryParse(c.Vm, out Guid g, out var used, 'N') || used != c.Vm.Length || g == Guid.Empty)
            {
                return TokenStatus.BadClaims;
            }

            vm = new VmId(g);
        }
        else
        {
            if (c.Project.Length > 64)
            {
                return TokenStatus.BadClaims;
            }

            project = Encoding.UTF8.GetString(c.Project);
        }

        if (!WalletAddress.TryParse(Encoding.ASCII.GetString(c.Subject), out var wallet))
        {
            return TokenStatus.BadClaims;
        }

        claims = new ConnectTokenClaims(_options.Issuer, wallet, _options.Audience, vm, project, c.Scopes, c.IssuedAt, c.NotBefore, c.ExpiresAt, jti);
        return TokenStatus.Valid;
    }

    private TokenStatus MaterializeNode(ref RawClaims c, Guid jti, out object? claims)
    {
        claims = null;
        if ((c.Seen & (ClaimsReader.Scp | ClaimsReader.Vm | ClaimsReader.Prj | ClaimsReader.Vol | ClaimsReader.Mov)) != 0 || !IsLowerHex(c.Subject, 0, 64)
            || c.Wallet.Length != 42 || !IsLowerHex(c.Wallet, 2, 40))
        {
            return TokenStatus.BadClaims;
        }

        NodeRole role;
        if (c.Role.SequenceEqual("agent"u8))
        {
            role = NodeRole.Agent;
        }
        else if (c.Role.SequenceEqual("relay"u8))
        {
            role = NodeRole.Relay;
        }
        else
        {
            return TokenStatus.BadClaims;
        }

        if (!NodeId.TryParse(Encoding.ASCII.GetString(c.Subject), null, out var node)
            || !WalletAddress.TryParse(Encoding.ASCII.GetString(c.Wallet), out var wallet))
        {
            return TokenStatus.BadClaims;
        }

        claims = new NodeTokenClaims(_options.Issuer, node, _options.Audience, wallet, role, c.IssuedAt, c.NotBefore, c.ExpiresAt, jti);
        return TokenStatus.Valid;
    }

    private TokenStatus MaterializeMove(ref RawClaims c, Guid jti, out object? claims)
    {
        claims = null;
        const int Required = ClaimsReader.Vm | ClaimsReader.Vol | ClaimsReader.Mov;
        if ((c.Seen & Required) != Required || (c.Seen & (ClaimsReader.Scp | ClaimsReader.Prj | ClaimsReader.Wal | ClaimsReader.Rol)) != 0
            || !IsLowerHex(c.Subject, 0, 64) || c.Volume.Length > 128 || c.Move.Length > 128
            || !Utf8Parser.TryParse(c.Vm, out Guid vm, out var used, 'N') || used != c.Vm.Length || vm == Guid.Empty
            || !NodeId.TryParse(Encoding.ASCII.GetString(c.Subject), null, out var source))
        {
            return TokenStatus.BadClaims;
        }

        claims = new VolumeMoveTokenClaims(_options.Issuer, source, _options.Audience, new VmId(vm), Encoding.UTF8.GetString(c.Volume),
            Encoding.UTF8.GetString(c.Move), c.IssuedAt, c.NotBefore, c.ExpiresAt, jti);
        return TokenStatus.Valid;
    }

    private static bool IsLowerHex(ReadOnlySpan<byte> value, int start, int count)
    {
        if (value.Length != start + count)
        {
            return false;
        }

        foreach (var b in value[start..])
        {
            if (!(b is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f'))
            {
                return false;
            }
        }

        return true;
    }

    // The footer must be exactly a JSON object whose "kid" is a short unescaped string; other keys are ignored.
    private static bool TryReadKeyId(ReadOnlySpan<byte> footer, Span<char> destination, out int length)
    {
        length = 0;
        if (footer.IsEmpty || footer[0] != (byte)'{')
        {
            return false;
        }

        try
        {
            var reader = new Utf8JsonReader(footer, new JsonReaderOptions { MaxDepth = 2 });
            reader.Read();
            var found = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isKid = !reader.ValueIsEscaped && reader.ValueSpan.SequenceEqual("kid"u8);
                if (!reader.Read())
                {
                    return false;
                }

                if (isKid)
                {
                    if (found || reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped
                        || reader.ValueSpan.Length is 0 or > MaxKeyIdChars)
                    {
                        return false;
                    }

                    length = Encoding.UTF8.GetChars(reader.ValueSpan, destination);
                    found = true;
                }
                else if (!reader.TrySkip())
                {
                    return false;
                }
            }

            return found && reader.TokenType == JsonTokenType.EndObject && !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
