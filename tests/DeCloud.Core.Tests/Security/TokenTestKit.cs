using DeCloud.Core.Model;
using DeCloud.Core.Security;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Security;

/// <summary>An orchestrator (key ring, issuer, revocations) and a host (keys, validator) on one fake clock.</summary>
internal sealed class TokenWorld : IDisposable
{
    public const string HostId = "host-1";

    public TokenWorld(TokenKeyRingOptions? ringOptions = null)
    {
        Clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
        Ring = new TokenKeyRing(ringOptions, Clock);
        Issuer = new TokenIssuer(Ring, new TokenIssuerOptions(), Clock);
        OrchestratorRevocations = new TokenRevocationList(Clock);
        HostKeys = new TokenVerificationKeys(Ring.GetPublicKeySet());
        HostRevocations = new TokenRevocationList(Clock);
        Audit = new InMemoryAuthorizationAuditLog();
        Validator = CreateValidator(HostId);
    }

    public static WalletAddress Wallet { get; } = WalletAddress.Parse("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2");

    public static VmId Vm { get; } = new(Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e"));

    public FakeTimeProvider Clock { get; }
    public TokenKeyRing Ring { get; }
    public TokenIssuer Issuer { get; }
    public TokenRevocationList OrchestratorRevocations { get; }
    public TokenVerificationKeys HostKeys { get; }
    public TokenRevocationList HostRevocations { get; }
    public InMemoryAuthorizationAuditLog Audit { get; }
    public TokenValidator Validator { get; }

    public TokenValidator CreateValidator(string audience) =>
        new(new TokenValidatorOptions { Audience = audience }, HostKeys, HostRevocations, Audit, Clock);

    public IssuedToken Issue(TokenScopes scopes = TokenScopes.Ssh | TokenScopes.Http, string audience = HostId, TimeSpan? lifetime = null) =>
        Issuer.IssueConnectToken(new ConnectTokenRequest(Wallet, audience, scopes) { Vm = Vm, Lifetime = lifetime });

    public void PushKeys() => HostKeys.Update(Ring.GetPublicKeySet());

    public void PushRevocations() =>
        HostRevocations.Apply(TokenRevocationUpdate.FromJson(OrchestratorRevocations.GetUpdate(HostRevocations.Sequence).ToJson()));

    public void Dispose() => Ring.Dispose();
}
