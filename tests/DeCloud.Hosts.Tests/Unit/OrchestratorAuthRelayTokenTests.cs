using System.Diagnostics.Metrics;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Orchestrator.Agents;
using DeCloud.Orchestrator.Security;
using DeCloud.Protocol.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>The orchestrator's relay tokens: issued at assignment, renewed for connected nodes before they expire.</summary>
public sealed class OrchestratorAuthRelayTokenTests : IDisposable
{
    private static readonly WalletAddress Wallet = WalletAddress.Parse("0x00000000000000000000000000000000000000dd");
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly TokenKeyRing _ring;
    private readonly AgentSessions _sessions = new();
    private readonly NodeId _nat = NodeId.FromMachine("dh9a-nat", Wallet);
    private readonly string _relay = NodeId.FromMachine("dh9a-relay", Wallet).Value;

    public OrchestratorAuthRelayTokenTests() => _ring = new TokenKeyRing(timeProvider: _clock);

    public void Dispose()
    {
        _ring.Dispose();
        _metrics.Dispose();
    }

    [Fact]
    public void Issue_ForAssignment_TokenTheRelayAcceptsForThatNode()
    {
        var sut = CreateSut();

        var token = sut.Issue(_nat, Wallet, _relay);

        var claims = RelayValidator().ValidateNodeToken(token);
        Assert.True(claims.IsValid, claims.Reason);
        Assert.Equal(_nat, claims.Claims!.Node);
        Assert.Equal(Wallet, claims.Claims.OperatorWallet);
        Assert.Equal(_clock.GetUtcNow().AddMinutes(30), claims.Claims.ExpiresAt);
    }

    [Fact]
    public void RenewDue_ConnectedNodeWithAThirdLeft_GetsAFreshTokenOthersDoNot()
    {
        var sut = CreateSut();
        using var session = new AgentSession(_nat, CancellationToken.None);
        _sessions.Attach(session);
        sut.Issue(_nat, Wallet, _relay);

        _clock.Advance(TimeSpan.FromMinutes(19));
        Assert.Equal(0, sut.RenewDue());
        Assert.False(session.Outbox.Reader.TryRead(out _));

        _clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(1, sut.RenewDue());
        Assert.True(session.Outbox.Reader.TryRead(out var message));
        var renewal = message!.RelayTokenRenewal;
        Assert.Equal(_relay, renewal.RelayNodeId);
        Assert.Equal(_clock.GetUtcNow().AddMinutes(30).ToUnixTimeMilliseconds(), renewal.ExpiresAtUnixMs);
        Assert.True(RelayValidator().ValidateNodeToken(renewal.Token).IsValid);

        // Renewed: nothing more is due until a third of the new lifetime is left.
        Assert.Equal(0, sut.RenewDue());
    }

    [Fact]
    public void RenewDue_DisconnectedNode_NothingSentAndForgottenOnceExpired()
    {
        var sut = CreateSut();
        sut.Issue(_nat, Wallet, _relay);
        _clock.Advance(TimeSpan.FromMinutes(31));
        Assert.Equal(0, sut.RenewDue());

        // It comes back later: nothing is renewed for it until a new assignment issues a token again.
        using var session = new AgentSession(_nat, CancellationToken.None);
        _sessions.Attach(session);
        Assert.Equal(0, sut.RenewDue());
        Assert.False(session.Outbox.Reader.TryRead(out _));
    }

    [Theory]
    [InlineData(5)]
    [InlineData(3601)]
    public void Options_LifetimeOutOfRange_NamesTheProperty(int seconds)
    {
        var errors = new RelayTokenOptions { Lifetime = TimeSpan.FromSeconds(seconds) }.Validate();

        Assert.Contains("Orchestrator:RelayTokens:Lifetime", Assert.Single(errors), StringComparison.Ordinal);
        Assert.Empty(new RelayTokenOptions().Validate());
    }

    private TokenValidator RelayValidator() =>
        new(new TokenValidatorOptions { Audience = _relay }, new TokenVerificationKeys(_ring.GetPublicKeySet()), timeProvider: _clock);

    private RelayTokens CreateSut() =>
        new(new TokenIssuer(_ring, timeProvider: _clock), _sessions, Options.Create(new RelayTokenOptions()), _metrics.GetRequiredService<IMeterFactory>(), _clock,
            NullLogger<RelayTokens>.Instance);
}
