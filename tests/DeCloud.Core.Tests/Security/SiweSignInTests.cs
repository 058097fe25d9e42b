using DeCloud.Core.Security;
using DeCloud.Core.Security.Siwe;
using DeCloud.Core.Sqlite;
using DeCloud.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Security;

public sealed class SiweSignInTests : IDisposable
{
    private readonly SqliteTestDatabase _db = new();
    private readonly FakeTimeProvider _clock = SiweTestKit.Clock();
    private readonly TestWallet _wallet = new();

    public void Dispose() => _db.Dispose();

    [Fact]
    public async Task SignInAsync_IssuedNonce_ReturnsASessionForTheWallet()
    {
        var sut = CreateSut();
        var nonce = await sut.IssueNonceAsync().Within();
        var text = SiweTestKit.Message(_wallet.Address, nonce, expiration: SiweTestKit.Now.AddHours(1)).Build();

        var result = await sut.SignInAsync(text, _wallet.Sign(text)).Within();

        Assert.True(result.IsSignedIn, result.Reason);
        Assert.Equal(_wallet.Address, result.Session!.Wallet);
        Assert.Equal(137, result.Session.ChainId);
        Assert.Equal(SiweTestKit.Now, result.Session.SignedInAt);
        Assert.Equal(SiweTestKit.Now.AddHours(1), result.Session.ExpiresAt); // capped by the message's expiration
    }

    [Fact]
    public async Task SignInAsync_ReplayedMessage_IsRefused()
    {
        var sut = CreateSut();
        var nonce = await sut.IssueNonceAsync().Within();
        var text = SiweTestKit.Message(_wallet.Address, nonce).Build();
        var signature = _wallet.Sign(text);

        Assert.True((await sut.SignInAsync(text, signature).Within()).IsSignedIn);
        var replay = await sut.SignInAsync(text, signature).Within();

        Assert.Equal(SiweStatus.NonceNotIssuedOrUsed, replay.Status);
        Assert.Null(replay.Session);
    }

    [Fact]
    public async Task SignInAsync_NonceNeverIssued_IsRefused()
    {
        var text = SiweTestKit.Message(_wallet.Address, "madeUpByTheClient1").Build();

        var result = await CreateSut().SignInAsync(text, _wallet.Sign(text)).Within();

        Assert.Equal(SiweStatus.NonceNotIssuedOrUsed, result.Status);
    }

    [Fact]
    public async Task SignInAsync_NonceOlderThanItsLifetime_IsRefused()
    {
        var sut = CreateSut();
        var nonce = await sut.IssueNonceAsync().Within();
        _clock.Advance(TimeSpan.FromMinutes(11));
        var text = SiweTestKit.Message(_wallet.Address, nonce, issuedAt: _clock.GetUtcNow()).Build();

        var result = await sut.SignInAsync(text, _wallet.Sign(text)).Within();

        Assert.Equal(SiweStatus.NonceNotIssuedOrUsed, result.Status);
    }

    [Fact]
    public async Task SignInAsync_BadSignature_DoesNotBurnTheNonce()
    {
        var sut = CreateSut();
        var nonce = await sut.IssueNonceAsync().Within();
        var text = SiweTestKit.Message(_wallet.Address, nonce).Build();
        var signature = _wallet.Sign(text);

        var bad = await sut.SignInAsync(text, TestWallet.HighSTwin(signature)).Within();
        var good = await sut.SignInAsync(text, signature).Within();

        Assert.Equal(SiweStatus.HighS, bad.Status);
        Assert.True(good.IsSignedIn);
    }

    [Fact]
    public async Task SignInAsync_ConcurrentReplays_SignInExactlyOnce()
    {
        var sut = CreateSut();
        var nonce = await sut.IssueNonceAsync().Within();
        var text = SiweTestKit.Message(_wallet.Address, nonce).Build();
        var signature = _wallet.Sign(text);
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var attempts = Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            return await sut.SignInAsync(text, signature);
        })).ToArray();
        start.SetResult();
        var results = await Task.WhenAll(attempts).Within(TimeSpan.FromMinutes(1));

        Assert.Single(results, r => r.IsSignedIn);
        Assert.Equal(15, results.Count(r => r.Status == SiweStatus.NonceNotIssuedOrUsed));
    }

    [Fact]
    public async Task TryConsumeAsync_ConcurrentConsumersOnTwoDatabaseHandles_OnlyOneWins()
    {
        // Two handles on one file behave like two orchestrator processes sharing the database.
        var first = new SqliteSiweNonceStore(_db.Database);
        var second = new SqliteSiweNonceStore(new SqliteDatabase(_db.FilePath));
        for (var round = 0; round < 10; round++)
        {
            var nonce = SqliteSiweNonceStore.NewNonce();
            await first.AddAsync(nonce, SiweTestKit.Now, SiweTestKit.Now.AddMinutes(5)).Within();
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var tasks = Enumerable.Range(0, 32).Select(i => Task.Run(async () =>
            {
                await start.Task;
                return await (i % 2 == 0 ? first : second).TryConsumeAsync(nonce, SiweTestKit.Now);
            })).ToArray();
            start.SetResult();

            var won = await Task.WhenAll(tasks).Within(TimeSpan.FromMinutes(1));

            Assert.Equal(1, won.Count(w => w));
        }
    }

    [Fact]
    public void NonceStore_AppliesSecurityMigrations()
    {
        _ = new SqliteSiweNonceStore(_db.Database);

        Assert.Equal(2, _db.Database.SchemaVersion("security"));
    }

    private SiweSignIn CreateSut() => new(SiweTestKit.Options(), new SqliteSiweNonceStore(_db.Database), _clock);
}
