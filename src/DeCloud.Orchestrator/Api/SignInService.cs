using System.Security.Cryptography;
using System.Text;
using DeCloud.Core.Model;
using DeCloud.Core.Security.Siwe;
using DeCloud.Orchestrator.Storage;

namespace DeCloud.Orchestrator.Api;

/// <summary>
/// Sign-In with Ethereum through Core's <see cref="SiweSignIn"/>: nonces are issued into and consumed
/// from SQLite exactly once (<see cref="SqliteSiweNonceStore"/>), messages are parsed and checked
/// strictly (domain, URI origin, chain id, times, low-S EIP-191 signature). A signed-in wallet gets an
/// opaque bearer session token; only its SHA-256 is stored, so sessions survive a restart.
/// </summary>
internal sealed class SignInService(SiweSignIn siwe, OrchestratorStore store, TimeProvider time)
{
    /// <summary>The statement every sign-in message carries.</summary>
    public const string Statement = "Sign in to DeCloud.";

    /// <summary>A fresh nonce and the EIP-4361 message the wallet must sign (no expiration time: the nonce's lifetime bounds it).</summary>
    public async ValueTask<(string Nonce, string Message, DateTimeOffset ExpiresAt)> BeginSignInAsync(WalletAddress wallet, CancellationToken cancellationToken = default)
    {
        var o = siwe.Options;
        var nonce = await siwe.IssueNonceAsync(cancellationToken).ConfigureAwait(false);
        var now = time.GetUtcNow();
        var message = new SiweMessage
        {
            Scheme = o.Scheme,
            Domain = o.Domain,
            Address = wallet,
            Statement = Statement,
            Uri = o.Uri,
            ChainId = o.ChainId,
            Nonce = nonce,
            IssuedAt = now,
        };
        return (nonce, message.Build(), now + o.NonceLifetime);
    }

    /// <summary>Verifies a signed message; on success returns a session token and its expiry, otherwise the reason.</summary>
    public async ValueTask<(string? Token, WalletAddress Wallet, DateTimeOffset ExpiresAt, string? Error)> CompleteAsync(string message, string signature,
        CancellationToken cancellationToken = default)
    {
        var result = await siwe.SignInAsync(message, signature, cancellationToken).ConfigureAwait(false);
        if (result.Session is not { } session)
        {
            return (null, default, default, $"{result.Status}: {result.Reason}");
        }

        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        store.AddSession(Hash(token), session.Wallet, session.ExpiresAt);
        return (token, session.Wallet, session.ExpiresAt, null);
    }

    /// <summary>The wallet of a live session token, or null.</summary>
    public WalletAddress? Authenticate(string token) =>
        token.Length is 0 or > 200 ? null : store.FindSession(Hash(token), time.GetUtcNow());

    private static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
