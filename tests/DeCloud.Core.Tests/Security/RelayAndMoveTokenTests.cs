using System.Text;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Core.Security.Paseto;
using NSec.Cryptography;

namespace DeCloud.Core.Tests.Security;

public sealed class RelayAndMoveTokenTests : IDisposable
{
    private static readonly NodeId NatNode = NodeId.FromMachine("nat-machine", TokenWorld.Wallet);
    private static readonly NodeId SourceNode = NodeId.FromMachine("source-machine", TokenWorld.Wallet);
    private static readonly string RelayId = NodeId.FromMachine("relay-machine", TokenWorld.Wallet).Value;
    private static readonly string DestinationId = NodeId.FromMachine("destination-machine", TokenWorld.Wallet).Value;

    private readonly TokenWorld _world = new();

    public void Dispose() => _world.Dispose();

    [Fact]
    public void IssueRelayToken_ValidatedByThatRelay_CarriesTheNodeAndItsWallet()
    {
        var issued = _world.Issuer.IssueRelayToken(NatNode, TokenWorld.Wallet, RelayId, TimeSpan.FromMinutes(10));

        var result = _world.CreateValidator(RelayId).ValidateNodeToken(issued.Token);

        Assert.Equal(TokenStatus.Valid, result.Status);
        Assert.Equal(NatNode, result.Claims!.Node);
        Assert.Equal(TokenWorld.Wallet, result.Claims.OperatorWallet);
        Assert.Equal(NodeRole.Agent, result.Claims.Role);
        Assert.Equal(RelayId, result.Claims.Audience);
        Assert.Equal(_world.Clock.GetUtcNow().AddMinutes(10), result.Claims.ExpiresAt);
        Assert.Equal(issued.ExpiresAt, result.Claims.ExpiresAt);
    }

    [Fact]
    public void IssueRelayToken_OtherRelayOrConnectCheck_Refused()
    {
        var token = _world.Issuer.IssueRelayToken(NatNode, TokenWorld.Wallet, RelayId).Token;

        Assert.Equal(TokenStatus.WrongAudience, _world.CreateValidator(DestinationId).ValidateNodeToken(token).Status);
        Assert.Equal(TokenStatus.WrongTokenKind, _world.CreateValidator(RelayId).ValidateConnectToken(token).Status);
        Assert.Equal(TokenStatus.WrongTokenKind, _world.CreateValidator(RelayId).AuthorizeVolumeMove(token, TokenWorld.Vm, "v", "m").Status);
        _world.Clock.Advance(TimeSpan.FromMinutes(61));
        Assert.Equal(TokenStatus.Expired, _world.CreateValidator(RelayId).ValidateNodeToken(token).Status);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(61)]
    public void IssueRelayToken_LifetimeOutOfRange_ThrowsNamingTheField(int minutes)
    {
        var ex = Assert.Throws<DeCloudValidationException>(() => _world.Issuer.IssueRelayToken(NatNode, TokenWorld.Wallet, RelayId, TimeSpan.FromMinutes(minutes)));
        Assert.Equal("lifetime", ex.Field);
    }

    [Fact]
    public void IssueRelayToken_BadInput_ThrowsNamingTheField()
    {
        Assert.Equal("node", Assert.Throws<DeCloudValidationException>(() => _world.Issuer.IssueRelayToken(default, TokenWorld.Wallet, RelayId)).Field);
        Assert.Equal("operatorWallet", Assert.Throws<DeCloudValidationException>(() => _world.Issuer.IssueRelayToken(NatNode, default, RelayId)).Field);
        Assert.Equal("audience", Assert.Throws<DeCloudValidationException>(() => _world.Issuer.IssueRelayToken(NatNode, TokenWorld.Wallet, "bad id")).Field);
    }

    [Fact]
    public void AuthorizeVolumeMove_MatchingMove_ValidWithAllClaimsAndAudited()
    {
        var issued = _world.Issuer.IssueVolumeMoveToken(new VolumeMoveTokenRequest(SourceNode, DestinationId, TokenWorld.Vm, "vm-data", "mv-1"));

        var result = _world.CreateValidator(DestinationId).AuthorizeVolumeMove(issued.Token, TokenWorld.Vm, "vm-data", "mv-1");

        Assert.Equal(TokenStatus.Valid, result.Status);
        var c = result.Claims!;
        Assert.Equal(SourceNode, c.Source);
        Assert.Equal(DestinationId, c.Audience);
        Assert.Equal(TokenWorld.Vm, c.Vm);
        Assert.Equal("vm-data", c.Volume);
        Assert.Equal("mv-1", c.MoveId);
        Assert.Equal(issued.TokenId, c.TokenId);
        Assert.Equal(_world.Clock.GetUtcNow() + VolumeMoveTokenRequest.DefaultLifetime, c.ExpiresAt);
        var entry = Assert.Single(_world.Audit.Snapshot());
        Assert.Equal(AuthorizationOutcome.Allow, entry.Outcome);
        Assert.Equal("move-token", entry.Source);
        Assert.Equal(SourceNode.Value, entry.Subject);
    }

    [Fact]
    public void AuthorizeVolumeMove_OtherVolumeMoveVmOrDestination_Refused()
    {
        var token = _world.Issuer.IssueVolumeMoveToken(new VolumeMoveTokenRequest(SourceNode, DestinationId, TokenWorld.Vm, "vm-data", "mv-1")).Token;
        var destination = _world.CreateValidator(DestinationId);

        Assert.Equal(TokenStatus.NotGranted, destination.AuthorizeVolumeMove(token, TokenWorld.Vm, "vm-other", "mv-1").Status);
        Assert.Equal(TokenStatus.NotGranted, destination.AuthorizeVolumeMove(token, TokenWorld.Vm, "vm-data", "mv-2").Status);
        Assert.Equal(TokenStatus.NotGranted, destination.AuthorizeVolumeMove(token, VmId.New(), "vm-data", "mv-1").Status);
        Assert.Equal(TokenStatus.WrongAudience, _world.CreateValidator(RelayId).AuthorizeVolumeMove(token, TokenWorld.Vm, "vm-data", "mv-1").Status);
        Assert.Equal(TokenStatus.WrongTokenKind, destination.ValidateConnectToken(token).Status);
        Assert.Equal(TokenStatus.WrongTokenKind, destination.ValidateNodeToken(token).Status);
        Assert.All(_world.Audit.Snapshot(), e => Assert.Equal(AuthorizationOutcome.Deny, e.Outcome));

        var connect = _world.Issue(audience: DestinationId).Token;
        Assert.Equal(TokenStatus.WrongTokenKind, destination.AuthorizeVolumeMove(connect, TokenWorld.Vm, "vm-data", "mv-1").Status);
        _world.Clock.Advance(TimeSpan.FromMinutes(31));
        Assert.Equal(TokenStatus.Expired, destination.AuthorizeVolumeMove(token, TokenWorld.Vm, "vm-data", "mv-1").Status);
    }

    [Fact]
    public void IssueVolumeMoveToken_BadRequest_ThrowsNamingTheField()
    {
        VolumeMoveTokenRequest Ok() => new(SourceNode, DestinationId, TokenWorld.Vm, "vm-data", "mv-1");
        DeCloudValidationException Fails(VolumeMoveTokenRequest r) => Assert.Throws<DeCloudValidationException>(() => _world.Issuer.IssueVolumeMoveToken(r));

        Assert.Equal("request.source", Fails(Ok() with { Source = default }).Field);
        Assert.Equal("request.destination", Fails(Ok() with { Destination = "" }).Field);
        Assert.Equal("request.vm", Fails(Ok() with { Vm = default }).Field);
        Assert.Equal("request.volume", Fails(Ok() with { Volume = "../etc" }).Field);
        Assert.Equal("request.moveId", Fails(Ok() with { MoveId = new string('m', 129) }).Field);
        Assert.Equal("request.lifetime", Fails(Ok() with { Lifetime = TimeSpan.FromHours(2) }).Field);
    }

    [Fact]
    public void AuthorizeVolumeMove_ForgedMoveClaims_AreBadClaims()
    {
        using var key = Key.Create(SignatureAlgorithm.Ed25519);
        var kid = TokenKeyRing.KeyIdOf(key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
        _world.HostKeys.Update(new TokenPublicKeySet(99, [
            new TokenPublicKey(kid, StrictBase64Url.Encode(key.PublicKey.Export(KeyBlobFormat.RawPublicKey)), TokenPublicKey.StatusActive, null)]));
        var now = _world.Clock.GetUtcNow();
        var validator = _world.CreateValidator(DestinationId);
        string Claims(string body) =>
            $"{{\"iss\":\"decloud\",\"sub\":\"{SourceNode.Value}\",\"aud\":\"{DestinationId}\",\"kind\":\"move\",{body}" +
            $"\"iat\":\"{now:O}\",\"nbf\":\"{now:O}\",\"exp\":\"{now.AddMinutes(5):O}\",\"jti\":\"{Guid.NewGuid():N}\"}}";
        TokenStatus Check(string claims) =>
            validator.AuthorizeVolumeMove(PasetoV4Public.Sign(key, Encoding.UTF8.GetBytes(claims), Encoding.UTF8.GetBytes($"{{\"kid\":\"{kid}\"}}")),
                TokenWorld.Vm, "vm-data", "mv-1").Status;
        var vm = $"\"vm\":\"{TokenWorld.Vm}\",";

        Assert.Equal(TokenStatus.Valid, Check(Claims(vm + "\"vol\":\"vm-data\",\"mov\":\"mv-1\",")));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims(vm + "\"mov\":\"mv-1\",")));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims(vm + "\"vol\":\"vm-data\",")));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims("\"vol\":\"vm-data\",\"mov\":\"mv-1\",")));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims(vm + "\"vol\":\"vm-data\",\"mov\":\"mv-1\",\"scp\":[\"ssh\"],")));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims(vm + "\"vol\":\"vm-data\",\"mov\":\"mv-1\",\"vol\":\"vm-data\",")));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims("\"vm\":\"not-a-guid\",\"vol\":\"vm-data\",\"mov\":\"mv-1\",")));
        Assert.Equal(TokenStatus.BadClaims, Check(Claims(vm + "\"vol\":7,\"mov\":\"mv-1\",")));

        // A move claim smuggled into a connect or node token makes it malformed, not a move grant.
        var connect = $"{{\"iss\":\"decloud\",\"sub\":\"{TokenWorld.Wallet.ToLowerHex()}\",\"aud\":\"{DestinationId}\",\"kind\":\"connect\",{vm}\"scp\":[\"ssh\"],\"vol\":\"x\"," +
            $"\"iat\":\"{now:O}\",\"nbf\":\"{now:O}\",\"exp\":\"{now.AddMinutes(5):O}\",\"jti\":\"{Guid.NewGuid():N}\"}}";
        Assert.Equal(TokenStatus.BadClaims,
            validator.ValidateConnectToken(PasetoV4Public.Sign(key, Encoding.UTF8.GetBytes(connect), Encoding.UTF8.GetBytes($"{{\"kid\":\"{kid}\"}}"))).Status);
    }
}
