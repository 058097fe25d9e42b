using CsCheck;
using DeCloud.Agent;
using DeCloud.Agent.Security;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>The agent's side of connect tokens in process, on a fake clock: key-set sync, cache, refusals.</summary>
public sealed class OrchestratorCoreTokenTests : IDisposable
{
    private static readonly WalletAddress Wallet = WalletAddress.Parse("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2");
    private readonly string _dir = Directory.CreateTempSubdirectory("dch-token-").FullName;
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
    private readonly TokenKeyRing _ring;
    private readonly TokenIssuer _issuer;
    private readonly NodeId _node = NodeId.FromMachine("dch-node", Wallet);
    private readonly VmId _vm = VmId.New();

    public OrchestratorCoreTokenTests()
    {
        _ring = new TokenKeyRing(new TokenKeyRingOptions(), _clock);
        _issuer = new TokenIssuer(_ring, new TokenIssuerOptions(), _clock);
    }

    public void Dispose()
    {
        _ring.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task AuthorizeAsync_TokenExpired_RefusedAsExpired()
    {
        var (authorizer, keySet, _) = CreateSut();
        await keySet.RefreshAsync().Within();
        var token = Issue(TimeSpan.FromMinutes(2));

        Assert.True((await authorizer.AuthorizeAsync(token, _vm, TokenScopes.Ssh)).IsValid);

        _clock.Advance(TimeSpan.FromMinutes(3));
        Assert.Equal(TokenStatus.Expired, (await authorizer.AuthorizeAsync(token, _vm, TokenScopes.Ssh)).Status);
    }

    [Fact]
    public async Task AuthorizeAsync_KeyRotatedSinceLastFetch_FetchesAgainAndAccepts()
    {
        var (authorizer, keySet, source) = CreateSut();
        await keySet.RefreshAsync().Within();
        _ring.Rotate();
        var token = Issue();

        var result = await authorizer.AuthorizeAsync(token, _vm, TokenScopes.Ssh);

        Assert.True(result.IsValid, result.Reason);
        Assert.Equal(2, source.Fetches);
    }

    [Fact]
    public async Task AuthorizeAsync_UnknownKeysRepeated_FetchesAtMostOncePerInterval()
    {
        var (authorizer, keySet, source) = CreateSut();
        await keySet.RefreshAsync().Within();
        using var stranger = new TokenKeyRing(new TokenKeyRingOptions(), _clock);
        var forged = new TokenIssuer(stranger, new TokenIssuerOptions(), _clock)
            .IssueConnectToken(new ConnectTokenRequest(Wallet, _node.Value, TokenScopes.Ssh) { Vm = _vm }).Token;

        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(TokenStatus.UnknownKey, (await authorizer.AuthorizeAsync(forged, _vm, TokenScopes.Ssh)).Status);
        }

        Assert.Equal(2, source.Fetches);
        _clock.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(TokenStatus.UnknownKey, (await authorizer.AuthorizeAsync(forged, _vm, TokenScopes.Ssh)).Status);
        Assert.Equal(3, source.Fetches);
    }

    [Fact]
    public async Task Start_OrchestratorUnreachable_ValidatesWithTheCachedKeySet()
    {
        var (_, first, _) = CreateSut();
        await first.RefreshAsync().Within();
        Assert.True(File.Exists(first.CachePath));

        var (authorizer, keySet, source) = CreateSut();
        source.Fail = true;
        await keySet.StartAsync(CancellationToken.None).Within();
        try
        {
            Assert.True((await authorizer.AuthorizeAsync(Issue(), _vm, TokenScopes.Ssh)).IsValid);
        }
        finally
        {
            await keySet.StopAsync(CancellationToken.None).Within();
        }
    }

    [Fact]
    public async Task Start_CacheDamaged_IgnoredAndRefusesUntilFetched()
    {
        var (authorizer, keySet, source) = CreateSut();
        await File.WriteAllTextAsync(keySet.CachePath, "{\"version\":1,\"keys\":[{\"kid\":\"x\"");
        source.Fail = true;
        await keySet.StartAsync(CancellationToken.None).Within();
        try
        {
            Assert.Equal(TokenStatus.UnknownKey, (await authorizer.AuthorizeAsync(Issue(), _vm, TokenScopes.Ssh)).Status);
            source.Fail = false;
            _clock.Advance(TimeSpan.FromSeconds(6));
            Assert.True((await authorizer.AuthorizeAsync(Issue(), _vm, TokenScopes.Ssh)).IsValid);
        }
        finally
        {
            await keySet.StopAsync(CancellationToken.None).Within();
        }
    }

    [Fact]
    public async Task RefreshAsync_GarbageKeySet_ThrowsAndKeepsTheKeysInUse()
    {
        var (authorizer, keySet, source) = CreateSut();
        await keySet.RefreshAsync().Within();
        source.Json = "{\"version\":9,\"keys\":[{\"kid\":\"k\",\"kty\":\"RSA\",\"crv\":\"P-256\",\"x\":\"AA\",\"status\":\"active\"}]}";

        await Assert.ThrowsAsync<DeCloudValidationException>(() => keySet.RefreshAsync());

        Assert.True((await authorizer.AuthorizeAsync(Issue(), _vm, TokenScopes.Ssh)).IsValid);
    }

    [Fact]
    public async Task AuthorizeAsync_RandomTokens_AlwaysRefusedNeverThrows()
    {
        var (authorizer, keySet, _) = CreateSut();
        await keySet.RefreshAsync().Within();
        var valid = Issue();

        Gen.String[0, 600].Sample(s => !authorizer.AuthorizeAsync(s, _vm, TokenScopes.Ssh).AsTask().GetAwaiter().GetResult().IsValid, iter: 2000);
        Gen.Int[0, valid.Length - 1].Select(Gen.Char['!', '~']).Sample((i, c) =>
        {
            var t = valid[..i] + c + valid[(i + 1)..];
            return t == valid || !authorizer.AuthorizeAsync(t, _vm, TokenScopes.Ssh).AsTask().GetAwaiter().GetResult().IsValid;
        }, iter: 2000);
    }

    [Fact]
    public void RotateIfDue_KeyOlderThanLifetime_RotatesOnceThenWaits()
    {
        var rotation = new DeCloud.Orchestrator.Security.SigningKeyRotation(_ring, Options.Create(new DeCloud.Orchestrator.OrchestratorOptions()), _clock,
            NullLogger<DeCloud.Orchestrator.Security.SigningKeyRotation>.Instance);
        var kid = _ring.CurrentKeyId;

        Assert.False(rotation.RotateIfDue(TimeSpan.FromDays(30)));
        _clock.Advance(TimeSpan.FromDays(30));
        Assert.True(rotation.RotateIfDue(TimeSpan.FromDays(30)));
        Assert.False(rotation.RotateIfDue(TimeSpan.FromDays(30)));

        Assert.NotEqual(kid, _ring.CurrentKeyId);
        Assert.Equal(2, _ring.GetPublicKeySet().Keys.Count);
    }

    [Theory]
    [InlineData("http://10.0.0.1:7836", "ListenUrl")]
    [InlineData("https://127.0.0.1:7836", "ListenUrl")]
    [InlineData("http://example.com:80", "ListenUrl")]
    public void Validate_BadOptions_NamesTheProperty(string url, string property)
    {
        var errors = new AgentAuthorizationOptions { ListenUrl = url }.Validate();

        Assert.Contains(errors, e => e.StartsWith(property, StringComparison.Ordinal));
        Assert.Empty(new AgentAuthorizationOptions { ListenUrl = string.Empty }.Validate());
        Assert.Contains(new AgentAuthorizationOptions { KeySetRefreshInterval = TimeSpan.Zero }.Validate(), e => e.StartsWith("KeySetRefreshInterval", StringComparison.Ordinal));
    }

    private string Issue(TimeSpan? lifetime = null) =>
        _issuer.IssueConnectToken(new ConnectTokenRequest(Wallet, _node.Value, TokenScopes.Ssh) { Vm = _vm, Lifetime = lifetime }).Token;

    private (ConnectAuthorizer Authorizer, OrchestratorKeySet KeySet, RingSource Source) CreateSut()
    {
        var keys = new TokenVerificationKeys();
        var source = new RingSource(_ring);
        var keySet = new OrchestratorKeySet(keys, source, Options.Create(new AgentOptions { DataDirectory = _dir }),
            Options.Create(new AgentAuthorizationOptions()), _clock, NullLogger<OrchestratorKeySet>.Instance);
        return (new ConnectAuthorizer(_node, keys, keySet, null, _clock), keySet, source);
    }

    /// <summary>The orchestrator's key ring as a key-set source; can be told to fail (orchestrator down).</summary>
    private sealed class RingSource(TokenKeyRing ring) : IKeySetSource
    {
        private int _fetches;

        public int Fetches => Volatile.Read(ref _fetches);

        public bool Fail { get; set; }

        public string? Json { get; set; }

        public Task<string> FetchAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _fetches);
            return Fail ? Task.FromException<string>(new HttpRequestException("connection refused"))
                : Task.FromResult(Json ?? ring.GetPublicKeySet().ToJson());
        }
    }
}
