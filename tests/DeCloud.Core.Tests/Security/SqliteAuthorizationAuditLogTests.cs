using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Testing;

namespace DeCloud.Core.Tests.Security;

public sealed class SqliteAuthorizationAuditLogTests : IDisposable
{
    private readonly SqliteTestDatabase _db = new();

    public void Dispose() => _db.Dispose();

    [Fact]
    public async Task Record_ThenFlush_PersistsEveryFieldNewestFirst()
    {
        await using var sut = new SqliteAuthorizationAuditLog(_db.Database);
        var at = new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);
        var vm = VmId.New();
        sut.Record(new AuthorizationAuditEntry(at, AuthorizationOutcome.Allow, "token", "valid", "0xabc", vm, null, TokenScopes.Ssh));
        sut.Record(new AuthorizationAuditEntry(at.AddSeconds(1), AuthorizationOutcome.Deny, "cache", "denied", "0xdef", null, "proj", TokenScopes.Http | TokenScopes.Port));

        await sut.FlushAsync().Within();
        var all = await sut.QueryAsync().Within();
        var one = await sut.QueryAsync("0xABC").Within();

        Assert.Equal(2, all.Count);
        Assert.Equal(new AuthorizationAuditEntry(at.AddSeconds(1), AuthorizationOutcome.Deny, "cache", "denied", "0xdef", null, "proj", TokenScopes.Http | TokenScopes.Port), all[0]);
        Assert.Equal(new AuthorizationAuditEntry(at, AuthorizationOutcome.Allow, "token", "valid", "0xabc", vm, null, TokenScopes.Ssh), Assert.Single(one));
    }

    [Fact]
    public async Task DisposeAsync_CommitsEverythingQueued()
    {
        var sut = new SqliteAuthorizationAuditLog(_db.Database);
        for (var i = 0; i < 2000; i++)
        {
            sut.Record(new AuthorizationAuditEntry(DateTimeOffset.UnixEpoch.AddSeconds(i), AuthorizationOutcome.Deny, "token", "expired", null, null, null, TokenScopes.Ssh));
        }

        await sut.DisposeAsync().AsTask().Within();

        await using var reader = new SqliteAuthorizationAuditLog(_db.Database);
        Assert.Equal(2000, (await reader.QueryAsync(limit: 5000).Within()).Count);
        Assert.Equal(0, sut.Dropped);
    }

    [Fact]
    public async Task TokenValidator_WithSqliteAudit_RecordsAllowAndDeny()
    {
        using var world = new TokenWorld();
        await using var audit = new SqliteAuthorizationAuditLog(_db.Database);
        var validator = new TokenValidator(new TokenValidatorOptions { Audience = TokenWorld.HostId }, world.HostKeys, world.HostRevocations, audit, world.Clock);
        var token = world.Issue(TokenScopes.Ssh).Token;

        validator.Authorize(token, TokenWorld.Vm, TokenScopes.Ssh);
        validator.Authorize(token.AsSpan(0, token.Length - 3), TokenWorld.Vm, TokenScopes.Ssh);
        await audit.FlushAsync().Within();

        var entries = await audit.QueryAsync().Within();
        Assert.Equal([AuthorizationOutcome.Deny, AuthorizationOutcome.Allow], entries.Select(e => e.Outcome));
        Assert.NotEqual("valid", entries[0].Reason);
    }
}
