using System.Text;
using CsCheck;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Core.Security.Paseto;
using NSec.Cryptography;

namespace DeCloud.Core.Tests.Security;

public sealed class TokenValidatorTests : IDisposable
{
    private readonly TokenWorld _world = new();

    public void Dispose() => _world.Dispose();

    [Fact]
    public void ValidateConnectToken_FreshToken_ReturnsAllClaims()
    {
        var issued = _world.Issue(TokenScopes.Ssh | TokenScopes.Terminal);

        var result = _world.Validator.ValidateConnectToken(issued.Token);

        Assert.Equal(TokenStatus.Valid, result.Status);
        var c = result.Claims!;
        Assert.Equal("decloud", c.Issuer);
        Assert.Equal(TokenWorld.Wallet, c.Subject);
        Assert.Equal(TokenWorld.HostId, c.Audience);
        Assert.Equal(TokenWorld.Vm, c.Vm);
        Assert.Null(c.Project);
        Assert.Equal(TokenScopes.Ssh | TokenScopes.Terminal, c.Scopes);
        Assert.Equal(_world.Clock.GetUtcNow(), c.IssuedAt);
        Assert.Equal(c.IssuedAt, c.NotBefore);
        Assert.Equal(c.IssuedAt.AddMinutes(5), c.ExpiresAt);
        Assert.Equal(issued.TokenId, c.TokenId);
        Assert.StartsWith("v4.public.", issued.Token, StringComparison.Ordinal);
    }

    [Fact]
    public void Token_Footer_CarriesTheKeyIdAsPaserkPid()
    {
        var issued = _world.Issue();
        var footer = Encoding.UTF8.GetString(Convert.FromBase64String(PadBase64(issued.Token.Split('.')[3])));

        Assert.Equal($"{{\"kid\":\"{_world.Ring.CurrentKeyId}\"}}", footer);
        Assert.StartsWith("k4.pid.", _world.Ring.CurrentKeyId, StringComparison.Ordinal);
        Assert.Equal(issued.KeyId, _world.Ring.CurrentKeyId);
    }

    [Fact]
    public void Authorize_GrantedVmAndScope_AllowsAndAudits()
    {
        var token = _world.Issue(TokenScopes.Ssh).Token;

        var result = _world.Validator.Authorize(token, TokenWorld.Vm, TokenScopes.Ssh);

        Assert.True(result.IsValid);
        var entry = Assert.Single(_world.Audit.Snapshot());
        Assert.Equal(AuthorizationOutcome.Allow, entry.Outcome);
        Assert.Equal("token", entry.Source);
        Assert.Equal(TokenWorld.Wallet.ToLowerHex(), entry.Subject);
        Assert.Equal(TokenWorld.Vm, entry.Vm);
    }

    [Fact]
    public void Authorize_OtherVmOrScope_IsNotGrantedAndAuditedAsDeny()
    {
        var token = _world.Issue(TokenScopes.Ssh).Token;

        Assert.Equal(TokenStatus.NotGranted, _world.Validator.Authorize(token, VmId.New(), TokenScopes.Ssh).Status);
        Assert.Equal(TokenStatus.NotGranted, _world.Validator.Authorize(token, TokenWorld.Vm, TokenScopes.Port).Status);
        Assert.All(_world.Audit.Snapshot(), e =>
        {
            Assert.Equal(AuthorizationOutcome.Deny, e.Outcome);
            Assert.Equal(TokenStatusText.Describe(TokenStatus.NotGranted), e.Reason);
        });
    }

    [Fact]
    public void AuthorizeProject_ProjectToken_GrantsOnlyThatProject()
    {
        var token = _world.Issuer.IssueConnectToken(new ConnectTokenRequest(TokenWorld.Wallet, TokenWorld.HostId, TokenScopes.Http) { Project = "proj-7" }).Token;

        Assert.True(_world.Validator.AuthorizeProject(token, "proj-7", TokenScopes.Http).IsValid);
        Assert.Equal(TokenStatus.NotGranted, _world.Validator.AuthorizeProject(token, "proj-8", TokenScopes.Http).Status);
        Assert.Equal(TokenStatus.NotGranted, _world.Validator.Authorize(token, TokenWorld.Vm, TokenScopes.Http).Status);
    }

    [Fact]
    public void Validate_TokenForAnotherHost_IsWrongAudience()
    {
        var token = _world.Issue(audience: "host-2").Token;

        Assert.Equal(TokenStatus.WrongAudience, _world.Validator.ValidateConnectToken(token).Status);
        Assert.True(_world.CreateValidator("host-2").ValidateConnectToken(token).IsValid);
    }

    [Fact]
    public void Validate_OtherIssuer_IsWrongIssuer()
    {
        var issuer = new TokenIssuer(_world.Ring, new TokenIssuerOptions { Issuer = "someone-else" }, _world.Clock);
        var token = issuer.IssueConnectToken(new ConnectTokenRequest(TokenWorld.Wallet, TokenWorld.HostId, TokenScopes.Ssh) { Vm = TokenWorld.Vm }).Token;

        Assert.Equal(TokenStatus.WrongIssuer, _world.Validator.ValidateConnectToken(token).Status);
    }

    [Fact]
    public void Validate_AfterExpiryPlusSkew_IsExpired()
    {
        var token = _world.Issue(lifetime: TimeSpan.FromMinutes(2)).Token;

        _world.Clock.Advance(TimeSpan.FromMinutes(2) + TimeSpan.FromSeconds(29));
        Assert.True(_world.Validator.ValidateConnectToken(token).IsValid);
        _world.Clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TokenStatus.Expired, _world.Validator.ValidateConnectToken(token).Status);
    }

    [Fact]
    public void Validate_HostClockBehindIssuer_IsIssuedInFutureBeyondSkew()
    {
        var issuerClock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(_world.Clock.GetUtcNow().AddMinutes(2));
        var token = new TokenIssuer(_world.Ring, timeProvider: issuerClock)
            .IssueConnectToken(new ConnectTokenRequest(TokenWorld.Wallet, TokenWorld.HostId, TokenScopes.Ssh) { Vm = TokenWorld.Vm }).Token;

        Assert.Equal(TokenStatus.IssuedInFuture, _world.Validator.ValidateConnectToken(token).Status);
    }

    [Fact]
    public void Validate_ForgedClaims_AreRefusedForEachReason()
    {
        using var key = Key.Create(SignatureAlgorithm.Ed25519);
        var kid = TokenKeyRing.KeyIdOf(key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
        _world.HostKeys.Update(new TokenPublicKeySet(99, [
            new TokenPublicKey(kid, StrictBase64Url.Encode(key.PublicKey.Export(KeyBlobFormat.RawPublicKey)), TokenPublicKey.StatusActive, null)]));
        var now = _world.Clock.GetUtcNow();
        string Claims(string extra = "", string iat = "", string nbf = "", string exp = "", string kind = "connect", string sub = "") =>
            $"{{\"iss\":\"decloud\",\"sub\":\"{(sub == "" ? TokenWorld.Wallet.ToLowerHex() : sub)}\",\"aud\":\"host-1\",\"kind\":\"{kind}\",\"vm\":\"{TokenWorld.Vm}\",\"scp\":[\"ssh\"]," +
            $"\"iat\":\"{(iat == "" ? now.ToString("O") : iat)}\",\"nbf\":\"{(nbf == "" ? now.ToString("O") : nbf)}\",\"exp\":\"{(exp == "" ? now.AddMinutes(5).ToString("O") : exp)}\",\"jti\":\"{Guid.NewGuid():N}\"{extra}}}";
        TokenStatus Check(string claims) =>
            _world.Validator.ValidateConnectToken(PasetoV4Public.Sign(key, Encoding.UTF8.GetBytes(claims), Encoding.UTF8.GetBytes($"{{\"kid\":\"{kid}\"}}"))).Status;

        Assert.Equal(TokenStatus.Valid, Check(Claims()));
        Assert.Equal(TokenStatus.NotYetValid, Check(Claims(nbf: now.AddMinutes(2).ToString("O"))));
        Assert.Equal(TokenStatus.LifetimeTooLong, Check(Claims(exp: now.AddHours(2).ToString("O"))));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims(exp: now.AddMinutes(-1).ToString("O"))));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims(extra: ",\"iss\":\"decloud\"")));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims(sub: "0xNOTHEX")));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims(kind: "admin")));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims().Replace("\"ssh\"", "\"root\"", StringComparison.Ordinal)));
        Assert.Equal(TokenStatus.BadClaims, Check("[1,2,3]"));
        Assert.Equal(TokenStatus.BadClaims, Check("{\"iss\":"));
        Assert.Equal(TokenStatus.WrongTokenKind, Check(Claims(kind: "node")));
        Assert.Equal(TokenStatus.Valid, Check(Claims(extra: ",\"note\":{\"nested\":[1,2]}")));
    }

    [Fact]
    public void Validate_UnknownKeyId_IsUnknownKey()
    {
        using var other = new TokenKeyRing(timeProvider: _world.Clock);
        var token = new TokenIssuer(other, timeProvider: _world.Clock)
            .IssueConnectToken(new ConnectTokenRequest(TokenWorld.Wallet, TokenWorld.HostId, TokenScopes.Ssh) { Vm = TokenWorld.Vm }).Token;

        Assert.Equal(TokenStatus.UnknownKey, _world.Validator.ValidateConnectToken(token).Status);
    }

    [Fact]
    public void Validate_KeyIdOfAnotherKey_IsBadSignature()
    {
        // A token signed by an outsider that claims the orchestrator's key id must fail the signature.
        using var key = Key.Create(SignatureAlgorithm.Ed25519);
        var claims = Encoding.UTF8.GetBytes("{\"iss\":\"decloud\"}");
        var token = PasetoV4Public.Sign(key, claims, Encoding.UTF8.GetBytes($"{{\"kid\":\"{_world.Ring.CurrentKeyId}\"}}"));

        Assert.Equal(TokenStatus.BadSignature, _world.Validator.ValidateConnectToken(token).Status);
    }

    [Theory]
    [InlineData("", TokenStatus.Malformed)]
    [InlineData("v4.public", TokenStatus.Malformed)]
    [InlineData("v4.public.", TokenStatus.Malformed)]
    [InlineData("v3.public.AAAA.AAAA", TokenStatus.WrongVersion)]
    [InlineData("v4.local.AAAA.AAAA", TokenStatus.WrongPurpose)]
    [InlineData("v4.public.AAAA", TokenStatus.MissingKeyId)]
    [InlineData("v4.public.AAAA.", TokenStatus.Malformed)]
    [InlineData("v4.public.AAAA.e30", TokenStatus.MissingKeyId)]
    [InlineData("v4.public.AAAA.eyJraWQiOjF9", TokenStatus.MissingKeyId)]
    [InlineData("v4.public.AAAA.eyJraWQiOiJ4In0", TokenStatus.UnknownKey)]
    [InlineData("v4.public.AAAA.eyJraWQiOiJ4In0=", TokenStatus.BadEncoding)]
    [InlineData("v4.public.AAAA.eyJraWQiOiJ4In0.x", TokenStatus.Malformed)]
    [InlineData("v4.public.A.eyJraWQiOiJ4In0", TokenStatus.UnknownKey)]
    public void Validate_MalformedToken_ReturnsTypedReason(string token, TokenStatus expected)
    {
        Assert.Equal(expected, _world.Validator.ValidateConnectToken(token).Status);
    }

    [Fact]
    public void Validate_MalformedBodiesUnderAKnownKey_ReturnTypedReasons()
    {
        var footer = _world.Issue().Token.Split('.')[3];

        Assert.Equal(TokenStatus.Truncated, _world.Validator.ValidateConnectToken($"v4.public.{new string('A', 84)}.{footer}").Status);
        Assert.Equal(TokenStatus.BadEncoding, _world.Validator.ValidateConnectToken($"v4.public.{new string('A', 85)}.{footer}").Status);
        Assert.Equal(TokenStatus.BadEncoding, _world.Validator.ValidateConnectToken($"v4.public.{new string('*', 88)}.{footer}").Status);
        Assert.Equal(TokenStatus.BadSignature, _world.Validator.ValidateConnectToken($"v4.public.{new string('A', 88)}.{footer}").Status);
    }

    [Fact]
    public void Validate_OversizedToken_IsRefusedBeforeDecoding()
    {
        var token = _world.Issue().Token + new string('A', 5000);

        Assert.Equal(TokenStatus.Oversized, _world.Validator.ValidateConnectToken(token).Status);
    }

    [Fact]
    public void Validate_TruncatedAtEveryLength_IsRefused()
    {
        var token = _world.Issue().Token;
        for (var n = 0; n < token.Length; n++)
        {
            Assert.NotEqual(TokenStatus.Valid, _world.Validator.ValidateConnectToken(token.AsSpan(0, n)).Status);
        }
    }

    [Fact]
    public void Validate_AnySingleByteFlipped_IsRefused()
    {
        var token = _world.Issue().Token;
        Assert.True(_world.Validator.ValidateConnectToken(token).IsValid);
        Gen.Int[0, token.Length - 1].Select(Gen.Int[1, 255]).Sample(t =>
        {
            var (index, xor) = t;
            var chars = token.ToCharArray();
            chars[index] = (char)((byte)chars[index] ^ xor);
            var status = _world.Validator.ValidateConnectToken(chars).Status;
            Assert.NotEqual(TokenStatus.Valid, status);
        }, iter: 4000);
    }

    [Fact]
    public void Validate_EveryPositionFlippedToEveryBase64Character_IsRefused()
    {
        // Exhaustive over the body and footer: changing any character to any other base64url
        // character (including those that only touch unused trailing bits) is refused.
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        var token = _world.Issue().Token;
        var chars = token.ToCharArray();
        for (var i = "v4.public.".Length; i < chars.Length; i++)
        {
            var original = chars[i];
            if (original == '.')
            {
                continue;
            }

            foreach (var c in alphabet)
            {
                if (c == original)
                {
                    continue;
                }

                chars[i] = c;
                Assert.NotEqual(TokenStatus.Valid, _world.Validator.ValidateConnectToken(chars).Status);
            }

            chars[i] = original;
        }
    }

    [Fact]
    public void Validate_RandomJunkOfEveryLength_NeverThrows()
    {
        var footer = _world.Issue().Token.Split('.')[3];
        Gen.String[Gen.Char["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/"], 0, 700].Sample(junk =>
        {
            Assert.NotEqual(TokenStatus.Valid, _world.Validator.ValidateConnectToken(junk).Status);
            Assert.NotEqual(TokenStatus.Valid, _world.Validator.ValidateConnectToken("v4.public." + junk).Status);
            Assert.NotEqual(TokenStatus.Valid, _world.Validator.ValidateConnectToken("v4.public." + junk + "." + footer).Status);
        }, iter: 3000);
    }

    [Fact]
    public void Options_MissingAudience_ThrowsNamingTheProperty()
    {
        var ex = Assert.Throws<DeCloudValidationException>(() => new TokenValidator(new TokenValidatorOptions(), _world.HostKeys));
        Assert.Equal("Audience", ex.Field);
    }

    [Fact]
    public void IssueConnectToken_BadRequests_ThrowNamingTheField()
    {
        Assert.Equal("request.vm", Assert.Throws<DeCloudValidationException>(() =>
            _world.Issuer.IssueConnectToken(new ConnectTokenRequest(TokenWorld.Wallet, "h", TokenScopes.Ssh))).Field);
        Assert.Equal("request.scopes", Assert.Throws<DeCloudValidationException>(() =>
            _world.Issuer.IssueConnectToken(new ConnectTokenRequest(TokenWorld.Wallet, "h", TokenScopes.None) { Vm = TokenWorld.Vm })).Field);
        Assert.Equal("request.lifetime", Assert.Throws<DeCloudValidationException>(() =>
            _world.Issuer.IssueConnectToken(new ConnectTokenRequest(TokenWorld.Wallet, "h", TokenScopes.Ssh) { Vm = TokenWorld.Vm, Lifetime = TimeSpan.FromHours(2) })).Field);
        Assert.Equal("request.audience", Assert.Throws<DeCloudValidationException>(() =>
            _world.Issuer.IssueConnectToken(new ConnectTokenRequest(TokenWorld.Wallet, "bad audience", TokenScopes.Ssh) { Vm = TokenWorld.Vm })).Field);
    }

    private static string PadBase64(string s) => s.Replace('-', '+').Replace('_', '/') + new string('=', (4 - (s.Length % 4)) % 4);
}
