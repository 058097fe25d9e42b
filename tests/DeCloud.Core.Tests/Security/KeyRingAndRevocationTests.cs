using DeCloud.Core.Model;
using DeCloud.Core.Security;

namespace DeCloud.Core.Tests.Security;

public sealed class KeyRingAndRevocationTests : IDisposable
{
    private readonly TokenWorld _world = new(new TokenKeyRingOptions { RotationOverlap = TimeSpan.FromMinutes(30), RetiredKeyRetention = TimeSpan.FromHours(2) });

    public void Dispose() => _world.Dispose();

    [Fact]
    public void Rotate_OldTokensVerifyDuringOverlap_ThenAreRetired()
    {
        var oldToken = _world.Issue(lifetime: TimeSpan.FromMinutes(60)).Token;
        var oldKid = _world.Ring.CurrentKeyId;

        var newKid = _world.Ring.Rotate();
        _world.PushKeys();
        var newToken = _world.Issue(lifetime: TimeSpan.FromMinutes(60)).Token;

        Assert.NotEqual(oldKid, newKid);
        Assert.Equal(2, _world.HostKeys.Version);
        Assert.True(_world.Validator.ValidateConnectToken(oldToken).IsValid);
        Assert.True(_world.Validator.ValidateConnectToken(newToken).IsValid);

        _world.Clock.Advance(TimeSpan.FromMinutes(30));
        Assert.Equal(TokenStatus.RetiredKey, _world.Validator.ValidateConnectToken(oldToken).Status);
        Assert.True(_world.Validator.ValidateConnectToken(newToken).IsValid);
    }

    [Fact]
    public void GetPublicKeySet_AfterRotations_ListsActiveVerifyAndRetiredKeys()
    {
        var first = _world.Ring.CurrentKeyId;
        _world.Ring.Rotate();
        _world.Clock.Advance(TimeSpan.FromMinutes(31));
        var second = _world.Ring.CurrentKeyId;
        _world.Ring.Rotate();

        var set = _world.Ring.GetPublicKeySet();

        Assert.Equal(3, set.Keys.Count);
        Assert.Equal(TokenPublicKey.StatusRetired, set.Keys.Single(k => k.Kid == first).Status);
        Assert.Equal(TokenPublicKey.StatusVerifyOnly, set.Keys.Single(k => k.Kid == second).Status);
        Assert.Equal(TokenPublicKey.StatusActive, set.Keys.Single(k => k.Kid == _world.Ring.CurrentKeyId).Status);

        _world.Clock.Advance(TimeSpan.FromHours(3));
        Assert.Single(_world.Ring.GetPublicKeySet().Keys);
    }

    [Fact]
    public void PublicKeySet_JsonRoundTrip_KeepsEveryKey()
    {
        _world.Ring.Rotate();
        var set = _world.Ring.GetPublicKeySet();

        var json = set.ToJson();
        var back = TokenPublicKeySet.FromJson(json);

        Assert.Contains("\"kty\":\"OKP\"", json);
        Assert.Contains("\"crv\":\"Ed25519\"", json);
        Assert.Equal(set.Version, back.Version);
        Assert.Equal(set.Keys, back.Keys);
        var host = new TokenVerificationKeys(back);
        Assert.Equal(2, host.Count);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{}")]
    [InlineData("{\"version\":1,\"keys\":[{\"kid\":\"a\",\"x\":\"AAAA\",\"status\":\"active\"}]}")]
    [InlineData("{\"version\":1,\"keys\":[{\"kid\":\"a\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"status\":\"weird\"}]}")]
    public void KeySet_MalformedJson_ThrowsValidationAndKeepsTheCurrentKeys(string json)
    {
        var before = _world.HostKeys.Version;

        Assert.Throws<DeCloudValidationException>(() => _world.HostKeys.Update(TokenPublicKeySet.FromJson(json)));

        Assert.Equal(before, _world.HostKeys.Version);
        Assert.True(_world.Validator.ValidateConnectToken(_world.Issue().Token).IsValid);
    }

    [Fact]
    public void Update_OlderKeySet_IsIgnored()
    {
        var old = _world.Ring.GetPublicKeySet();
        _world.Ring.Rotate();
        _world.PushKeys();

        Assert.False(_world.HostKeys.Update(old));
        Assert.True(_world.Validator.ValidateConnectToken(_world.Issue().Token).IsValid);
    }

    [Fact]
    public void Retire_CompromisedCurrentKey_RotatesAndRefusesItsTokensAtOnce()
    {
        var token = _world.Issue().Token;
        var kid = _world.Ring.CurrentKeyId;

        Assert.True(_world.Ring.Retire(kid));
        _world.PushKeys();

        Assert.NotEqual(kid, _world.Ring.CurrentKeyId);
        Assert.Equal(TokenStatus.RetiredKey, _world.Validator.ValidateConnectToken(token).Status);
        Assert.True(_world.Validator.ValidateConnectToken(_world.Issue().Token).IsValid);
        Assert.False(_world.Ring.Retire("k4.pid.unknown"));
    }

    [Fact]
    public void RevokeToken_PushedToHost_RefusesOnlyThatToken()
    {
        var revoked = _world.Issue();
        var other = _world.Issue();

        _world.OrchestratorRevocations.RevokeToken(revoked.TokenId, revoked.ExpiresAt);
        Assert.True(_world.Validator.ValidateConnectToken(revoked.Token).IsValid); // not pushed yet
        _world.PushRevocations();

        Assert.Equal(TokenStatus.Revoked, _world.Validator.ValidateConnectToken(revoked.Token).Status);
        Assert.True(_world.Validator.ValidateConnectToken(other.Token).IsValid);
    }

    [Fact]
    public void RevokeSubject_PushedToHost_RefusesEarlierTokensButNotLaterOnes()
    {
        var before = _world.Issue().Token;
        _world.OrchestratorRevocations.RevokeSubject(TokenWorld.Wallet);
        _world.PushRevocations();
        _world.Clock.Advance(TimeSpan.FromSeconds(1));
        var after = _world.Issue().Token;

        Assert.Equal(TokenStatus.SubjectRevoked, _world.Validator.ValidateConnectToken(before).Status);
        Assert.True(_world.Validator.ValidateConnectToken(after).IsValid);
    }

    [Fact]
    public void GetUpdate_SinceSequence_ReturnsOnlyNewerEntries()
    {
        var list = _world.OrchestratorRevocations;
        list.RevokeToken(Guid.NewGuid(), _world.Clock.GetUtcNow().AddMinutes(5));
        var seq = list.Sequence;
        var id = Guid.NewGuid();
        list.RevokeToken(id, _world.Clock.GetUtcNow().AddMinutes(5));
        list.RevokeSubject(TokenWorld.Wallet);

        var update = list.GetUpdate(seq);

        Assert.Equal(id, Assert.Single(update.Tokens).TokenId);
        Assert.Equal(TokenWorld.Wallet.ToLowerHex(), Assert.Single(update.Subjects).Subject);
        Assert.Equal(3, update.Sequence);
    }

    [Fact]
    public void Prune_AfterTokensExpire_DropsTheirEntries()
    {
        var list = _world.HostRevocations;
        list.RevokeToken(Guid.NewGuid(), _world.Clock.GetUtcNow().AddMinutes(5));
        list.RevokeSubject(TokenWorld.Wallet);

        _world.Clock.Advance(TimeSpan.FromMinutes(61));

        Assert.Equal(2, list.Prune(TimeSpan.FromMinutes(60)));
    }

    [Fact]
    public void RevocationUpdate_MalformedJson_ThrowsValidation()
    {
        Assert.Throws<DeCloudValidationException>(() => TokenRevocationUpdate.FromJson("{\"seq\":1}"));
        Assert.Throws<DeCloudValidationException>(() => TokenRevocationUpdate.FromJson("[]"));
    }
}
