using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Core.Security.Paseto;
using DeCloud.Core.Security.Siwe;
using Nethereum.Signer;
using NSec.Cryptography;

namespace DeCloud.Benchmarks.Tokens;

/// <summary>One orchestrator and one host, shared by the quick area and the BenchmarkDotNet suite.</summary>
internal sealed class TokenBenchmarkSetup : IDisposable
{
    public const string HostId = "host-bench";

    public TokenBenchmarkSetup()
    {
        Ring = new TokenKeyRing();
        var issuer = new TokenIssuer(Ring);
        Wallet = WalletAddress.Parse("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2");
        Vm = VmId.New();
        Token = issuer.IssueConnectToken(new ConnectTokenRequest(Wallet, HostId, TokenScopes.Ssh | TokenScopes.Http) { Vm = Vm }).Token;

        // A realistic revocation list: lookups must stay O(1) however many entries it holds.
        Revocations = new TokenRevocationList();
        for (var i = 0; i < 10_000; i++)
        {
            Revocations.RevokeToken(Guid.NewGuid(), DateTimeOffset.MaxValue);
        }

        for (var i = 0; i < 1_000; i++)
        {
            Revocations.RevokeSubject("0x" + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()) + "00000000", DateTimeOffset.MaxValue);
        }

        Validator = new TokenValidator(new TokenValidatorOptions { Audience = HostId }, new TokenVerificationKeys(Ring.GetPublicKeySet()), Revocations);
        Cache = new HostAuthorizationCache(new AlwaysAllow(), new HostAuthorizationCacheOptions { Ttl = TimeSpan.FromHours(1), MaxOfflineAge = TimeSpan.FromHours(2) },
            new InMemoryAuthorizationAuditLog(), Revocations);
        Cache.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).AsTask().GetAwaiter().GetResult();

        // The bare baseline: Ed25519 over a message as long as the token's PAE.
        BareKey = Key.Create(SignatureAlgorithm.Ed25519);
        var body = Token.Split('.')[2];
        BareMessage = new byte[PasetoV4Public.PaeLength(StrictBase64Url.DecodedLength(body.Length) - 64, 64, 0)];
        Random.Shared.NextBytes(BareMessage);
        BareSignature = SignatureAlgorithm.Ed25519.Sign(BareKey, BareMessage);

        var key = new EthECKey("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318");
        SiweVerifier = new SiweVerifier(new SiweOptions { Domain = "app.decloud.example", Uri = "https://app.decloud.example", ChainId = 137, MaxMessageAge = null });
        SiweText = new SiweMessage
        {
            Domain = "app.decloud.example",
            Address = WalletAddress.Parse(key.GetPublicAddress()),
            Statement = "Sign in to DeCloud",
            Uri = "https://app.decloud.example/login",
            ChainId = 137,
            Nonce = "abcdefgh12345678",
            IssuedAt = DateTimeOffset.UnixEpoch.AddYears(55),
        }.Build();
        SiweSignature = new EthereumMessageSigner().EncodeUTF8AndSign(SiweText, key);
    }

    public TokenKeyRing Ring { get; }
    public WalletAddress Wallet { get; }
    public VmId Vm { get; }
    public string Token { get; }
    public TokenRevocationList Revocations { get; }
    public TokenValidator Validator { get; }
    public HostAuthorizationCache Cache { get; }
    public Key BareKey { get; }
    public byte[] BareMessage { get; }
    public byte[] BareSignature { get; }
    public SiweVerifier SiweVerifier { get; }
    public string SiweText { get; }
    public string SiweSignature { get; }

    public bool BareVerify() => SignatureAlgorithm.Ed25519.Verify(BareKey.PublicKey, BareMessage, BareSignature);

    public bool Validate() => Validator.ValidateConnectToken(Token).IsValid;

    public bool CacheHit() => Cache.AuthorizeAsync(Wallet, Vm, TokenScopes.Ssh).GetAwaiter().GetResult().IsAllowed;

    public bool Siwe() => SiweVerifier.Verify(SiweText, SiweSignature).IsValid;

    /// <summary>SIWE parsing alone (grammar, EIP-55 checksum, times).</summary>
    public bool SiweParse() => SiweMessage.TryParse(SiweText, out _, out _);

    /// <summary>For comparison: recovery with Nethereum's EthECKey (BouncyCastle generic curve arithmetic), which SIWE does not use.</summary>
    public bool SiweRecover()
    {
        var hash = SiweVerifier.PersonalSignHash(SiweText);
        var sig = Convert.FromHexString(SiweSignature.AsSpan(2));
        var signature = EthECDSASignatureFactory.FromComponents(sig[..32], sig[32..64], sig[64]);
        return EthECKey.RecoverFromSignature(signature, hash).GetPublicAddress().Length == 42;
    }

    public void Dispose()
    {
        Ring.Dispose();
        BareKey.Dispose();
    }

    private sealed class AlwaysAllow : IAuthorizationSource
    {
        public ValueTask<bool> IsAllowedAsync(AuthorizationKey key, CancellationToken cancellationToken = default) => ValueTask.FromResult(true);
    }
}
