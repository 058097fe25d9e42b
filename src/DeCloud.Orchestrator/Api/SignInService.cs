using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using DeCloud.Core.Model;
using DeCloud.Orchestrator.Storage;
using Microsoft.Extensions.Options;
using Nethereum.Signer;

namespace DeCloud.Orchestrator.Api;

/// <summary>
/// Sign-In with Ethereum (EIP-4361 message, EIP-191 signature): hands out one-use nonces, verifies a
/// signed message, and issues an opaque session token (only its SHA-256 is stored).
/// </summary>
internal sealed class SignInService(OrchestratorStore store, IOptions<OrchestratorOptions> options, TimeProvider time)
{
    private readonly EthereumMessageSigner _signer = new();

    /// <summary>A fresh nonce and the message the wallet must sign.</summary>
    public (string Nonce, string Message, DateTimeOffset ExpiresAt) BeginSignIn(WalletAddress wallet)
    {
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var now = time.GetUtcNow();
        var expires = now + options.Value.NonceLifetime;
        store.AddNonce(nonce, expires);
        return (nonce, Message(options.Value.SignInDomain, wallet, nonce, now, expires), expires);
    }

    /// <summary>Verifies a signed message; on success returns a session token and its expiry, otherwise the reason.</summary>
    public (string? Token, WalletAddress Wallet, DateTimeOffset ExpiresAt, string? Error) Complete(string message, string signature)
    {
        if (message.Length > 4096 || signature.Length > 200)
        {
            return (null, default, default, "message or signature is too long.");
        }

        var lines = message.Split('\n');
        if (lines.Length < 10 || !lines[0].EndsWith(" wants you to sign in with your Ethereum account:", StringComparison.Ordinal))
        {
            return (null, default, default, "message is not a sign-in message from /api/v1/auth/nonce.");
        }

        var domain = lines[0][..lines[0].IndexOf(' ', StringComparison.Ordinal)];
        if (domain != options.Value.SignInDomain)
        {
            return (null, default, default, $"message is for domain '{domain}', not '{options.Value.SignInDomain}'.");
        }

        if (!WalletAddress.TryParse(lines[1], out var wallet, out var walletError))
        {
            return (null, default, default, "address: " + walletError);
        }

        var nonce = Field(lines, "Nonce: ");
        var expiresText = Field(lines, "Expiration Time: ");
        if (nonce is null || expiresText is null
            || !DateTimeOffset.TryParse(expiresText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var expires))
        {
            return (null, default, default, "message lacks a Nonce or an Expiration Time.");
        }

        string recovered;
        try
        {
            recovered = _signer.EncodeUTF8AndEcRecover(message, signature);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or IndexOutOfRangeException or InvalidOperationException)
        {
            return (null, default, default, "signature is not a 65-byte hex signature.");
        }

        if (!WalletAddress.TryParse(recovered, out var signer) || signer != wallet)
        {
            return (null, default, default, "signature was not made by the address in the message.");
        }

        var now = time.GetUtcNow();
        if (expires < now)
        {
            return (null, default, default, "message has expired; ask for a new nonce.");
        }

        if (!store.ConsumeNonce(nonce, now))
        {
            return (null, default, default, "nonce is unknown, expired or already used; ask for a new nonce.");
        }

        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var sessionExpires = now + options.Value.SessionLifetime;
        store.AddSession(Hash(token), wallet, sessionExpires);
        return (token, wallet, sessionExpires, null);
    }

    /// <summary>The wallet of a live session token, or null.</summary>
    public WalletAddress? Authenticate(string token) =>
        token.Length is 0 or > 200 ? null : store.FindSession(Hash(token), time.GetUtcNow());

    internal static string Message(string domain, WalletAddress wallet, string nonce, DateTimeOffset issued, DateTimeOffset expires) =>
        string.Create(CultureInfo.InvariantCulture, $"""
            {domain} wants you to sign in with your Ethereum account:
            {wallet}

            Sign in to DeCloud.

            URI: http://{domain}
            Version: 1
            Chain ID: 137
            Nonce: {nonce}
            Issued At: {issued.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ}
            Expiration Time: {expires.UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ}
            """).ReplaceLineEndings("\n");

    private static string? Field(string[] lines, string prefix)
    {
        foreach (var l in lines)
        {
            if (l.StartsWith(prefix, StringComparison.Ordinal))
            {
                return l[prefix.Length..].Trim();
            }
        }

        return null;
    }

    private static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
