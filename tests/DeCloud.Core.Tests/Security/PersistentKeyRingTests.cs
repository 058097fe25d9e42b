using DeCloud.Core.Model;
using DeCloud.Core.Security;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Security;

public sealed class PersistentKeyRingTests : IDisposable
{
    private readonly SqliteTestDatabase _db = new();
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => _db.Dispose();

    [Fact]
    public void Constructor_EmptyStore_CreatesAndSavesOneSigningKey()
    {
        var store = new SqliteTokenKeyStore(_db.Database);
        using var ring = CreateSut(store);

        var saved = store.Load();

        Assert.True(ring.IsPersistent);
        Assert.NotNull(saved);
        Assert.Equal(1, saved.Version);
        var key = Assert.Single(saved.Keys);
        Assert.Equal(ring.CurrentKeyId, key.KeyId);
        Assert.True(key.IsCurrent);
        Assert.Equal(32, key.PrivateKey.Length);
    }

    [Fact]
    public void Constructor_AfterRestart_KeepsSigningKeyAndOldTokensVerify()
    {
        string token;
        string kid;
        using (var before = CreateSut(new SqliteTokenKeyStore(_db.Database)))
        {
            token = Issue(before);
            kid = before.CurrentKeyId;
        }

        using var after = CreateSut(new SqliteTokenKeyStore(_db.Database));
        var host = Validator(after);

        Assert.Equal(kid, after.CurrentKeyId);
        Assert.True(host.Authorize(token, TokenWorld.Vm, TokenScopes.Ssh).IsValid);
        Assert.True(host.Authorize(Issue(after), TokenWorld.Vm, TokenScopes.Ssh).IsValid);
    }

    [Fact]
    public void Rotate_Persisted_RestartedRingKeepsBothKeysAndVersion()
    {
        string oldToken;
        string newKid;
        long version;
        using (var ring = CreateSut(new SqliteTokenKeyStore(_db.Database)))
        {
            oldToken = Issue(ring);
            newKid = ring.Rotate();
            version = ring.Version;
        }

        using var after = CreateSut(new SqliteTokenKeyStore(_db.Database));
        var set = after.GetPublicKeySet();

        Assert.Equal(newKid, after.CurrentKeyId);
        Assert.Equal(version, after.Version);
        Assert.Equal(2, set.Keys.Count);
        Assert.True(Validator(after).Authorize(oldToken, TokenWorld.Vm, TokenScopes.Ssh).IsValid);

        _clock.Advance(TimeSpan.FromMinutes(31));
        Assert.Equal(TokenStatus.RetiredKey, Validator(after).Authorize(oldToken, TokenWorld.Vm, TokenScopes.Ssh).Status);
    }

    [Fact]
    public void CurrentKeyCreatedAt_AfterRotateAndRestart_IsTheNewKeysCreationTime()
    {
        DateTimeOffset created;
        using (var ring = CreateSut(new SqliteTokenKeyStore(_db.Database)))
        {
            Assert.Equal(_clock.GetUtcNow(), ring.CurrentKeyCreatedAt);
            _clock.Advance(TimeSpan.FromDays(3));
            ring.Rotate();
            created = ring.CurrentKeyCreatedAt;
        }

        _clock.Advance(TimeSpan.FromDays(1));
        using var after = CreateSut(new SqliteTokenKeyStore(_db.Database));

        Assert.Equal(created.ToUnixTimeMilliseconds(), after.CurrentKeyCreatedAt.ToUnixTimeMilliseconds());
        Assert.Equal(_clock.GetUtcNow() - TimeSpan.FromDays(1), created);
    }

    [Fact]
    public void Retire_Persisted_RestartedRingStillRefusesTheRetiredKey()
    {
        string token;
        using (var ring = CreateSut(new SqliteTokenKeyStore(_db.Database)))
        {
            token = Issue(ring);
            Assert.True(ring.Retire(ring.CurrentKeyId));
        }

        using var after = CreateSut(new SqliteTokenKeyStore(_db.Database));

        Assert.Equal(TokenStatus.RetiredKey, Validator(after).Authorize(token, TokenWorld.Vm, TokenScopes.Ssh).Status);
    }

    [Fact]
    public void Rotate_StoreFails_RingUnchanged()
    {
        var store = new FailingStore();
        using var ring = CreateSut(store);
        var kid = ring.CurrentKeyId;
        var version = ring.Version;
        store.Fail = true;

        Assert.Throws<IOException>(() => ring.Rotate());
        Assert.Throws<IOException>(() => ring.Retire(kid));

        Assert.Equal(kid, ring.CurrentKeyId);
        Assert.Equal(version, ring.Version);
        Assert.Single(ring.GetPublicKeySet().Keys);
        Assert.True(Validator(ring).Authorize(Issue(ring), TokenWorld.Vm, TokenScopes.Ssh).IsValid);
    }

    [Fact]
    public void Constructor_KeyIdDoesNotMatchPrivateKey_RefusedNamingTheField()
    {
        var store = new SqliteTokenKeyStore(_db.Database);
        using (CreateSut(store))
        {
        }

        var saved = store.Load()!;
        store.Save(saved with { Keys = [saved.Keys[0] with { KeyId = "k4.pid.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }] });

        var ex = Assert.Throws<DeCloudValidationException>(() => CreateSut(store));
        Assert.Equal("tokenKeys.kid", ex.Field);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(64)]
    public void Constructor_PrivateKeyWrongLength_Refused(int length)
    {
        var store = new FailingStore();
        store.Save(new StoredTokenKeyRing(1, [new StoredTokenKey("k4.pid.x", new byte[length], _clock.GetUtcNow(), null, true)]));

        var ex = Assert.Throws<DeCloudValidationException>(() => CreateSut(store));
        Assert.Equal("tokenKeys.privateKey", ex.Field);
    }

    [Fact]
    public void Constructor_NoSigningKeyOrTwo_Refused()
    {
        var store = new FailingStore();
        using (var ring = CreateSut(store))
        {
            ring.Rotate();
        }

        var saved = store.Load()!;
        store.Save(saved with { Keys = [.. saved.Keys.Select(k => k with { IsCurrent = false })] });
        Assert.Equal("tokenKeys.isCurrent", Assert.Throws<DeCloudValidationException>(() => CreateSut(store)).Field);

        store.Save(saved with { Keys = [.. saved.Keys.Select(k => k with { IsCurrent = true })] });
        Assert.Equal("tokenKeys.isCurrent", Assert.Throws<DeCloudValidationException>(() => CreateSut(store)).Field);
    }

    [Fact]
    public void Save_ReplacesWholeRing_LoadReturnsExactlyTheLastOne()
    {
        var store = new SqliteTokenKeyStore(_db.Database);
        using var ring = CreateSut(store);
        ring.Rotate();
        ring.Rotate();

        var saved = store.Load()!;

        Assert.Equal(ring.Version, saved.Version);
        Assert.Equal(3, saved.Keys.Count);
        Assert.Single(saved.Keys, k => k.IsCurrent);
        Assert.Equal(ring.CurrentKeyId, saved.Keys.Single(k => k.IsCurrent).KeyId);
    }

    private TokenKeyRing CreateSut(ITokenKeyStore store) =>
        new(store, new TokenKeyRingOptions { RotationOverlap = TimeSpan.FromMinutes(30) }, _clock);

    private string Issue(TokenKeyRing ring) =>
        new TokenIssuer(ring, new TokenIssuerOptions(), _clock)
            .IssueConnectToken(new ConnectTokenRequest(TokenWorld.Wallet, TokenWorld.HostId, TokenScopes.Ssh) { Vm = TokenWorld.Vm }).Token;

    private TokenValidator Validator(TokenKeyRing ring) =>
        new(new TokenValidatorOptions { Audience = TokenWorld.HostId }, new TokenVerificationKeys(ring.GetPublicKeySet()), timeProvider: _clock);

    /// <summary>An in-memory store that can be told to fail every save (a full disk).</summary>
    private sealed class FailingStore : ITokenKeyStore
    {
        private StoredTokenKeyRing? _ring;

        public bool Fail { get; set; }

        public StoredTokenKeyRing? Load() => _ring;

        public void Save(StoredTokenKeyRing ring) => _ring = Fail ? throw new IOException("disk full") : ring;
    }
}
