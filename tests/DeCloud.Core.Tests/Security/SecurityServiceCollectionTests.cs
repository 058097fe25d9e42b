using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Core.Security.Siwe;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace DeCloud.Core.Tests.Security;

public sealed class SecurityServiceCollectionTests
{
    [Fact]
    public void AddDeCloudSecurity_CalledTwice_RegistersEachServiceOnce()
    {
        var services = new ServiceCollection();

        services.AddDeCloudSecurity().AddTokenValidation(o => o.Audience = "host-1").AddTokenIssuing();
        services.AddDeCloudSecurity().AddTokenValidation(o => o.Audience = "host-1").AddTokenIssuing();

        Assert.Single(services, d => d.ServiceType == typeof(TokenValidator));
        Assert.Single(services, d => d.ServiceType == typeof(TokenIssuer));
        Assert.Single(services, d => d.ServiceType == typeof(TokenKeyRing));
        Assert.Single(services, d => d.ServiceType == typeof(TokenRevocationList));
        Assert.Single(services, d => d.ServiceType == typeof(IAuthorizationAuditLog));
    }

    [Fact]
    public void Resolve_IssuerAndValidator_WorkTogether()
    {
        using var sp = new ServiceCollection().AddDeCloudSecurity().AddTokenValidation(o => o.Audience = "host-1").AddTokenIssuing().Services.BuildServiceProvider();
        sp.GetRequiredService<TokenVerificationKeys>().Update(sp.GetRequiredService<TokenKeyRing>().GetPublicKeySet());

        var token = sp.GetRequiredService<TokenIssuer>().IssueConnectToken(
            new ConnectTokenRequest(WalletAddress.Parse("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"), "host-1", TokenScopes.Ssh) { Vm = VmId.New() });

        Assert.True(sp.GetRequiredService<TokenValidator>().ValidateConnectToken(token.Token).IsValid);
    }

    [Fact]
    public void Resolve_WithTokenKeyStore_RingIsPersistentAndSurvivesANewContainer()
    {
        using var db = new SqliteTestDatabase();
        string kid;
        using (var first = new ServiceCollection().AddSingleton<ITokenKeyStore>(new SqliteTokenKeyStore(db.Database))
                   .AddDeCloudSecurity().AddTokenIssuing().Services.BuildServiceProvider())
        {
            var ring = first.GetRequiredService<TokenKeyRing>();
            Assert.True(ring.IsPersistent);
            kid = ring.CurrentKeyId;
        }

        using var second = new ServiceCollection().AddSingleton<ITokenKeyStore>(new SqliteTokenKeyStore(db.Database))
            .AddDeCloudSecurity().AddTokenIssuing().Services.BuildServiceProvider();

        Assert.Equal(kid, second.GetRequiredService<TokenKeyRing>().CurrentKeyId);
    }

    [Fact]
    public void Resolve_BadSignInOptions_FailsNamingTheProperty()
    {
        using var sp = new ServiceCollection().AddDeCloudSecurity().AddTokenIssuing()
            .AddSignIn("orchestrator", o => o.Domain = "app.decloud.example").Services.BuildServiceProvider();

        var ex = Assert.Throws<DeCloudValidationException>(() => sp.GetRequiredService<IOptions<SiweOptions>>().Value);
        Assert.Equal("Uri", ex.Field);
    }
}
