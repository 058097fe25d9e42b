using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Security;

public sealed class HostAuthorizationCacheTests
{
    private static readonly WalletAddress Wallet = WalletAddress.Parse("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2");
    private static readonly VmId Vm = VmId.New();

    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
    private readonly FakeOrchestrator _orchestrator = new();
    private readonly InMemoryAuthorizationAuditLog _audit = new();

    [Fact]
    public async Task AuthorizeAsync_WithinTtl_ServesFromCacheWithoutAsking()
    {
        var sut = CreateSut();

        var first = await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();
        _clock.Advance(TimeSpan.FromSeconds(59));
        var second = await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();

        Assert.Equal(AuthorizationDecisionSource.Orchestrator, first.Source);
        Assert.Equal(AuthorizationDecisionSource.Cache, second.Source);
        Assert.True(second.IsAllowed);
        Assert.Equal(1, _orchestrator.Calls);
    }

    [Fact]
    public async Task AuthorizeAsync_AfterTtl_AsksTheOrchestratorAgain()
    {
        var sut = CreateSut();
        await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();
        _orchestrator.Allow = false;

        _clock.Advance(TimeSpan.FromSeconds(60));
        var decision = await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();

        Assert.Equal(AuthorizationDecisionSource.Orchestrator, decision.Source);
        Assert.False(decision.IsAllowed);
        Assert.Equal(2, _orchestrator.Calls);
    }

    [Fact]
    public async Task AuthorizeAsync_OrchestratorUnreachable_ServesWithinTheBoundThenFailsClosed()
    {
        var sut = CreateSut();
        await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();
        _orchestrator.Reachable = false;

        _clock.Advance(TimeSpan.FromMinutes(14) + TimeSpan.FromSeconds(59));
        var within = await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();
        _clock.Advance(TimeSpan.FromSeconds(1));
        var beyond = await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();

        Assert.Equal(AuthorizationDecisionSource.OfflineCache, within.Source);
        Assert.True(within.IsAllowed);
        Assert.Equal(AuthorizationDecisionSource.FailClosed, beyond.Source);
        Assert.False(beyond.IsAllowed);
    }

    [Fact]
    public async Task AuthorizeAsync_OrchestratorBackAfterOutage_RefreshesAndServesFreshly()
    {
        var sut = CreateSut();
        await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();
        _orchestrator.Reachable = false;
        _clock.Advance(TimeSpan.FromMinutes(20));
        Assert.False((await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within()).IsAllowed);

        _orchestrator.Reachable = true;
        var decision = await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();

        Assert.Equal(AuthorizationDecisionSource.Orchestrator, decision.Source);
        Assert.True(decision.IsAllowed);
    }

    [Fact]
    public async Task AuthorizeAsync_UnreachableWithNothingCached_FailsClosed()
    {
        _orchestrator.Reachable = false;

        var decision = await CreateSut().AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();

        Assert.Equal(AuthorizationDecisionSource.FailClosed, decision.Source);
        Assert.False(decision.IsAllowed);
    }

    [Fact]
    public async Task AuthorizeAsync_OrchestratorHangs_TimesOutAndServesOffline()
    {
        var sut = CreateSut();
        await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();
        _clock.Advance(TimeSpan.FromMinutes(2));
        _orchestrator.Hang = true;

        var pending = sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask();
        await _orchestrator.Entered.Task.Within();
        Assert.False(pending.IsCompleted);
        _clock.Advance(TimeSpan.FromSeconds(5));
        var decision = await pending.Within();

        Assert.Equal(AuthorizationDecisionSource.OfflineCache, decision.Source);
        Assert.True(decision.IsAllowed);
    }

    [Fact]
    public async Task AuthorizeAsync_CallerCancels_PropagatesCancellation()
    {
        var sut = CreateSut();
        _orchestrator.Hang = true;
        using var cts = new CancellationTokenSource();

        var pending = sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh, cts.Token).AsTask();
        await _orchestrator.Entered.Task.Within();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending.Within());
    }

    [Fact]
    public async Task AuthorizeAsync_DenyDecisions_AreCachedAndServedOfflineToo()
    {
        _orchestrator.Allow = false;
        var sut = CreateSut();
        await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Port).AsTask().Within();
        _orchestrator.Reachable = false;
        _clock.Advance(TimeSpan.FromMinutes(5));

        var decision = await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Port).AsTask().Within();

        Assert.Equal(AuthorizationDecisionSource.OfflineCache, decision.Source);
        Assert.False(decision.IsAllowed);
    }

    [Fact]
    public async Task AuthorizeAsync_EveryDecision_IsAuditedWithItsReason()
    {
        var sut = CreateSut();
        await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();
        await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();
        _orchestrator.Reachable = false;
        _clock.Advance(TimeSpan.FromMinutes(16));
        await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();

        var entries = _audit.Snapshot();

        Assert.Equal(["orchestrator", "cache", "fail-closed"], entries.Select(e => e.Source));
        Assert.Equal([AuthorizationOutcome.Allow, AuthorizationOutcome.Allow, AuthorizationOutcome.Deny], entries.Select(e => e.Outcome));
        Assert.All(entries, e => Assert.Equal(Wallet.ToLowerHex(), e.Subject));
        Assert.Contains("fail closed", entries[2].Reason);
    }

    [Fact]
    public async Task SubjectRevoked_DropsTheWalletsCachedDecisions()
    {
        var revocations = new TokenRevocationList(_clock);
        var sut = CreateSut(revocations);
        await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();
        _orchestrator.Reachable = false;

        revocations.RevokeSubject(Wallet);
        var decision = await sut.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().Within();

        Assert.Equal(0, sut.Count);
        Assert.Equal(AuthorizationDecisionSource.FailClosed, decision.Source);
    }

    [Fact]
    public void Options_OfflineBoundShorterThanTtl_ThrowsNamingTheProperty()
    {
        var ex = Assert.Throws<DeCloudValidationException>(() =>
            new HostAuthorizationCache(_orchestrator, new HostAuthorizationCacheOptions { Ttl = TimeSpan.FromMinutes(5), MaxOfflineAge = TimeSpan.FromMinutes(1) }));
        Assert.Equal("MaxOfflineAge", ex.Field);
    }

    private HostAuthorizationCache CreateSut(TokenRevocationList? revocations = null) =>
        new(_orchestrator, new HostAuthorizationCacheOptions(), _audit, revocations, _clock);

    private sealed class FakeOrchestrator : IAuthorizationSource
    {
        public bool Allow { get; set; } = true;
        public bool Reachable { get; set; } = true;
        public bool Hang { get; set; }
        public int Calls { get; private set; }
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async ValueTask<bool> IsAllowedAsync(AuthorizationKey key, CancellationToken cancellationToken = default)
        {
            Calls++;
            if (Hang)
            {
                Entered.TrySetResult();
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            return Reachable ? Allow : throw new HttpRequestException("connection refused (test)");
        }
    }
}
