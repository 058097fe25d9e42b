using DeCloud.Core.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Core.Security.Siwe;

/// <summary>A signed-in wallet: what Sign-In with Ethereum produces.</summary>
/// <param name="SessionId">A fresh random id for the session.</param>
/// <param name="Wallet">The wallet that signed.</param>
/// <param name="ChainId">The chain the message named.</param>
/// <param name="SignedInAt">When the sign-in was accepted.</param>
/// <param name="ExpiresAt">When the session ends (the session lifetime, capped by the message's expiration time).</param>
/// <param name="Resources">The resources the message listed.</param>
public sealed record WalletSession(Guid SessionId, WalletAddress Wallet, long ChainId, DateTimeOffset SignedInAt, DateTimeOffset ExpiresAt, IReadOnlyList<string> Resources);

/// <summary>The outcome of a sign-in: a session, or the status and reason it was refused.</summary>
public sealed class SiweSignInResult
{
    internal SiweSignInResult(SiweStatus status, string reason, WalletSession? session, SiweMessage? message)
    {
        Status = status;
        Reason = reason;
        Session = session;
        Message = message;
    }

    /// <summary><see cref="SiweStatus.Valid"/> or why the sign-in was refused.</summary>
    public SiweStatus Status { get; }

    /// <summary>What is wrong (or <c>valid</c>).</summary>
    public string Reason { get; }

    /// <summary>The session, when signed in.</summary>
    public WalletSession? Session { get; }

    /// <summary>The parsed message, when it parsed.</summary>
    public SiweMessage? Message { get; }

    /// <summary>True when signed in.</summary>
    public bool IsSignedIn => Session is not null;
}

/// <summary>
/// Sign-In with Ethereum on the orchestrator: issues nonces, verifies signed messages with
/// <see cref="SiweVerifier"/>, consumes the nonce exactly once, and returns a <see cref="WalletSession"/>.
/// </summary>
public sealed partial class SiweSignIn
{
    private readonly SiweVerifier _verifier;
    private readonly ISiweNonceStore _nonces;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>Creates the service.</summary>
    public SiweSignIn(SiweOptions options, ISiweNonceStore nonces, TimeProvider? timeProvider = null, ILogger<SiweSignIn>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(nonces);
        _time = timeProvider ?? TimeProvider.System;
        _verifier = new SiweVerifier(options, _time);
        _nonces = nonces;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The options in force.</summary>
    public SiweOptions Options => _verifier.Options;

    /// <summary>Issues a fresh nonce, valid for <see cref="SiweOptions.NonceLifetime"/>, to put in the message.</summary>
    public async ValueTask<string> IssueNonceAsync(CancellationToken cancellationToken = default)
    {
        var nonce = SqliteSiweNonceStore.NewNonce();
        var now = _time.GetUtcNow();
        await _nonces.AddAsync(nonce, now, now + Options.NonceLifetime, cancellationToken).ConfigureAwait(false);
        return nonce;
    }

    /// <summary>
    /// Signs a wallet in: the message must verify and carry a nonce this server issued and nobody used.
    /// The nonce is consumed only by a message whose signature verified, so junk cannot burn nonces.
    /// </summary>
    public async ValueTask<SiweSignInResult> SignInAsync(string? message, string? signature, CancellationToken cancellationToken = default)
    {
        var verified = _verifier.Verify(message, signature);
        if (!verified.IsValid)
        {
            return Refuse(verified.Status, verified.Reason, verified.Message);
        }

        var m = verified.Message!;
        var now = _time.GetUtcNow();
        if (!await _nonces.TryConsumeAsync(m.Nonce, now, cancellationToken).ConfigureAwait(false))
        {
            return Refuse(SiweStatus.NonceNotIssuedOrUsed, $"nonce '{m.Nonce}' was not issued by this server, has expired, or was already used.", m);
        }

        var expires = now + Options.SessionLifetime;
        if (m.ExpirationTime is { } exp && exp < expires)
        {
            expires = exp;
        }

        var session = new WalletSession(Guid.NewGuid(), m.Address, m.ChainId, now, expires, m.Resources);
        SecurityMetrics.SignIn("valid");
        Log.SignedIn(_logger, m.Address.ToString(), session.SessionId);
        return new SiweSignInResult(SiweStatus.Valid, "valid", session, m);
    }

    private SiweSignInResult Refuse(SiweStatus status, string reason, SiweMessage? message)
    {
        SecurityMetrics.SignIn(status.ToString());
        Log.SignInRefused(_logger, status, reason);
        return new SiweSignInResult(status, reason, null, message);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Wallet {Wallet} signed in (session {SessionId})")]
        public static partial void SignedIn(ILogger logger, string wallet, Guid sessionId);

        [LoggerMessage(EventId = 5102, Level = LogLevel.Information, Message = "Sign-in refused: {Status}: {Reason}")]
        public static partial void SignInRefused(ILogger logger, SiweStatus status, string reason);
    }
}
