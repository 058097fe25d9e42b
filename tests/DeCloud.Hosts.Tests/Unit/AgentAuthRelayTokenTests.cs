using System.Security.Cryptography;
using System.Text;
using CsCheck;
using DeCloud.Agent.Security;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Relay;
using DeCloud.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>The relay role's relay-token check (<see cref="RelayTokenAuthenticator"/>) and the NAT'd node's proof.</summary>
public sealed class AgentAuthRelayTokenTests : IDisposable
{
    private const string NatKey = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    private const string OtherKey = "8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f";

    private readonly string _dir = Directory.CreateTempSubdirectory("dh9a-relay-auth-").FullName;
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
    private readonly NodeId _relay = NodeId.FromMachine("dh9a-relay", WalletAddress.Parse("0x00000000000000000000000000000000000000aa"));
    private readonly FakeLogger<RelayTokenAuthenticator> _log = new();
    private readonly AgentAuthTestKit _kit;
    private readonly RelayTokenAuthenticator _sut;
    private readonly Agent.Control.AgentIdentity _nat = AgentAuthTestKit.Identity(NatKey, "dh9a-nat-a");
    private readonly Agent.Control.AgentIdentity _other = AgentAuthTestKit.Identity(OtherKey, "dh9a-nat-b");

    public AgentAuthRelayTokenTests()
    {
        _kit = new AgentAuthTestKit(_dir, _relay, _clock);
        _sut = new RelayTokenAuthenticator(_kit.Authorizer, _log);
    }

    public void Dispose()
    {
        _kit.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Authenticate_OwnTokenAndWalletSignature_Succeeds()
    {
        var result = await AuthenticateAsync(_nat, Token(_nat), _nat.NodeId.Value);

        Assert.True(result.Succeeded, result.Reason);
        Assert.Contains(_log.Collector.GetSnapshot(), r => r.Level == LogLevel.Information && r.Message.Contains("authenticated with relay token", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Authenticate_TokenForAnotherRelay_RefusedAndLogged()
    {
        var other = NodeId.FromMachine("dh9a-other-relay", _nat.Wallet).Value;

        var result = await AuthenticateAsync(_nat, _kit.Issuer.IssueRelayToken(_nat.NodeId, _nat.Wallet, other).Token, _nat.NodeId.Value);

        AssertRefused(result, "WrongAudience");
    }

    [Fact]
    public async Task Authenticate_ExpiredToken_RefusedAndLogged()
    {
        var token = _kit.Issuer.IssueRelayToken(_nat.NodeId, _nat.Wallet, _relay.Value, TimeSpan.FromMinutes(2)).Token;
        _clock.Advance(TimeSpan.FromMinutes(3));

        AssertRefused(await AuthenticateAsync(_nat, token, _nat.NodeId.Value), "Expired");
    }

    [Fact]
    public async Task Authenticate_TokenSignedByUnknownKey_RefusedAfterAKeySetRefetch()
    {
        using var rogue = new TokenKeyRing(timeProvider: _clock);
        var token = new TokenIssuer(rogue, timeProvider: _clock).IssueRelayToken(_nat.NodeId, _nat.Wallet, _relay.Value).Token;

        AssertRefused(await AuthenticateAsync(_nat, token, _nat.NodeId.Value), "UnknownKey");
        Assert.NotNull(_kit.KeySet.LastFetched);
    }

    [Fact]
    public async Task Authenticate_OwnValidTokenClaimingAnotherNode_Refused()
    {
        // Node B holds a perfectly valid token, for B, and claims to be A (to take A's mappings).
        var result = await AuthenticateAsync(_other, Token(_other), _nat.NodeId.Value);

        AssertRefused(result, $"is for node {_other.NodeId.Value}");
    }

    [Fact]
    public async Task Authenticate_StolenTokenWithoutTheNodesWallet_Refused()
    {
        // B saw A's token on the wire and presents it as A, but signs the challenge with its own wallet.
        var result = await AuthenticateAsync(_other, Token(_nat), _nat.NodeId.Value);

        AssertRefused(result, "not signed by the operator wallet");
    }

    [Fact]
    public async Task Authenticate_ProofReplayedOnAnotherConnection_Refused()
    {
        var credentials = new RelayTokenCredentials(_nat);
        credentials.Update(_relay.Value, Token(_nat));
        var seen = RandomNumberGenerator.GetBytes(32);
        var proof = await credentials.CreateProofAsync(_nat.NodeId.Value, seen).AsTask().Within();

        var result = await _sut.AuthenticateAsync(new RelayAuthenticationContext(_nat.NodeId.Value, RandomNumberGenerator.GetBytes(32), proof, null)).AsTask().Within();

        AssertRefused(result, "not signed by the operator wallet");
    }

    [Fact]
    public async Task Authenticate_HmacProofOrGarbage_RefusedWithoutThrowing()
    {
        var challenge = RandomNumberGenerator.GetBytes(32);
        var hmac = await new HmacChallengeCredentials(new byte[32]).CreateProofAsync(_nat.NodeId.Value, challenge).AsTask().Within();
        AssertRefused(await _sut.AuthenticateAsync(new RelayAuthenticationContext(_nat.NodeId.Value, challenge, hmac, null)).AsTask().Within(), "not a relay token");

        var token = Token(_nat);
        foreach (var proof in new[] { token, token + "\n", token + "\n0x" + new string('f', 130), token + "\n0x" + new string('g', 130), "v4.public.\n0x", token + "\nx\ny" })
        {
            var r = await _sut.AuthenticateAsync(new RelayAuthenticationContext(_nat.NodeId.Value, challenge, Encoding.UTF8.GetBytes(proof), null)).AsTask().Within();
            Assert.False(r.Succeeded, proof);
        }

        Gen.Byte.Array[65].Sample(signature =>
        {
            signature[64] = (byte)(27 + (signature[64] & 1)); // a well-formed v, so recovery runs on random r and s
            var proof = Encoding.UTF8.GetBytes(token + "\n0x" + Convert.ToHexStringLower(signature));
            var r = _sut.AuthenticateAsync(new RelayAuthenticationContext(_nat.NodeId.Value, challenge, proof, null)).AsTask().GetAwaiter().GetResult();
            return !r.Succeeded && r.Reason.Length > 0;
        }, iter: 100);
        Gen.Byte.Array[0, 5000].Sample(bytes =>
        {
            var r = _sut.AuthenticateAsync(new RelayAuthenticationContext(_nat.NodeId.Value, challenge, bytes, null)).AsTask().GetAwaiter().GetResult();
            return !r.Succeeded && r.Reason.Length > 0;
        }, iter: 300);
    }

    [Fact]
    public async Task CreateProof_BeforeAnyToken_ThrowsIOExceptionSoTheClientRetries()
    {
        var credentials = new RelayTokenCredentials(_nat);

        await Assert.ThrowsAsync<IOException>(() => credentials.CreateProofAsync(_nat.NodeId.Value, new byte[32]).AsTask()).Within();
        Assert.Null(credentials.RelayNodeId);
    }

    private string Token(Agent.Control.AgentIdentity node) => _kit.Issuer.IssueRelayToken(node.NodeId, node.Wallet, _relay.Value, TimeSpan.FromMinutes(10)).Token;

    private async Task<RelayAuthenticationResult> AuthenticateAsync(Agent.Control.AgentIdentity signer, string token, string claimedNode)
    {
        var credentials = new RelayTokenCredentials(signer);
        credentials.Update(_relay.Value, token);
        var challenge = RandomNumberGenerator.GetBytes(32);
        var proof = await credentials.CreateProofAsync(claimedNode, challenge).AsTask().Within();
        return await _sut.AuthenticateAsync(new RelayAuthenticationContext(claimedNode, challenge, proof, null)).AsTask().Within();
    }

    private void AssertRefused(RelayAuthenticationResult result, string reason)
    {
        Assert.False(result.Succeeded);
        Assert.Contains(reason, result.Reason, StringComparison.Ordinal);
        Assert.Contains(_log.Collector.GetSnapshot(), r => r.Level == LogLevel.Warning && r.Message.Contains(reason, StringComparison.Ordinal));
    }
}
