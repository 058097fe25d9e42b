using System.Globalization;
using System.Text;
using DeCloud.Core.Model;
using Nethereum.Signer;

namespace DeCloud.Core.Security.Siwe;

/// <summary>Why a Sign-In with Ethereum message was refused (or <see cref="Valid"/>).</summary>
public enum SiweStatus
{
    /// <summary>Signed by the address it names and meant for this server now.</summary>
    Valid = 0,

    /// <summary>Not EIP-4361 text (missing, misplaced or malformed field; bad EIP-55 checksum; too long).</summary>
    Malformed,

    /// <summary>The signature is not 0x-prefixed hex of exactly 65 bytes.</summary>
    BadSignatureEncoding,

    /// <summary>The recovery byte v is not 27 or 28.</summary>
    BadRecoveryId,

    /// <summary>r or s is zero or not below the curve order.</summary>
    SignatureOutOfRange,

    /// <summary>s is in the upper half of the curve order (the malleable twin of a low-S signature).</summary>
    HighS,

    /// <summary>The signature recovers to another address than the message's (altered message or another signer).</summary>
    AddressMismatch,

    /// <summary>The message names another domain or scheme.</summary>
    WrongDomain,

    /// <summary>The message's URI has another origin than this server's.</summary>
    WrongUri,

    /// <summary>The message names another chain.</summary>
    WrongChainId,

    /// <summary>Issued-at lies in the future beyond the allowed clock skew.</summary>
    IssuedInFuture,

    /// <summary>Issued-at is older than the accepted message age.</summary>
    TooOld,

    /// <summary>Not-before has not come yet.</summary>
    NotYetValid,

    /// <summary>Expiration time has passed.</summary>
    Expired,

    /// <summary>The nonce was not issued by this server, has expired, or was already used.</summary>
    NonceNotIssuedOrUsed,
}

/// <summary>The server's expectations for Sign-In with Ethereum messages.</summary>
public sealed class SiweOptions
{
    /// <summary>The domain (RFC 3986 authority) users sign in to, e.g. <c>app.decloud.example</c>. Required.</summary>
    public string Domain { get; set; } = string.Empty;

    /// <summary>The scheme the message must name before the domain, or null to accept none or any.</summary>
    public string? Scheme { get; set; }

    /// <summary>The URI whose origin (scheme, host, port) the message's URI must share, e.g. <c>https://app.decloud.example</c>. Required.</summary>
    public string Uri { get; set; } = string.Empty;

    /// <summary>The chain id the message must name. Default 137 (Polygon).</summary>
    public long ChainId { get; set; } = 137;

    /// <summary>Tolerated clock difference for issued-at, not-before and expiration. Default 1 minute; at most 10 minutes.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The oldest issued-at accepted, or null for no limit. Default 10 minutes.</summary>
    public TimeSpan? MaxMessageAge { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long an issued nonce may be used. Default 10 minutes.</summary>
    public TimeSpan NonceLifetime { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long a session lasts (capped by the message's expiration time). Default 12 hours.</summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(12);

    internal Uri ParsedUri { get; private set; } = null!;

    internal void Validate()
    {
        if (!SiweGrammar.IsAuthority(Domain ?? string.Empty))
        {
            throw Model.Validate.Fail(nameof(Domain), $"'{Domain}' is not an RFC 3986 authority such as app.decloud.example.");
        }

        if (Scheme is not null && !SiweGrammar.IsScheme(Scheme))
        {
            throw Model.Validate.Fail(nameof(Scheme), $"'{Scheme}' is not a URI scheme.");
        }

        if (!System.Uri.TryCreate(Uri, UriKind.Absolute, out var parsed) || !SiweGrammar.IsUri(Uri))
        {
            throw Model.Validate.Fail(nameof(Uri), $"'{Uri}' is not an absolute URI such as https://app.decloud.example.");
        }

        ParsedUri = parsed;
        Model.Validate.Range(ChainId, 1, long.MaxValue, nameof(ChainId));
        if (ClockSkew < TimeSpan.Zero || ClockSkew > TimeSpan.FromMinutes(10))
        {
            throw Model.Validate.Fail(nameof(ClockSkew), $"{ClockSkew} is out of range; expected 0 to 10 minutes.");
        }

        if (MaxMessageAge is { } age && age <= TimeSpan.Zero)
        {
            throw Model.Validate.Fail(nameof(MaxMessageAge), $"{age} must be positive (or null for no limit).");
        }

        if (NonceLifetime < TimeSpan.FromSeconds(10) || NonceLifetime > TimeSpan.FromDays(1))
        {
            throw Model.Validate.Fail(nameof(NonceLifetime), $"{NonceLifetime} is out of range; expected 10 seconds to 1 day.");
        }

        if (SessionLifetime < TimeSpan.FromMinutes(1) || SessionLifetime > TimeSpan.FromDays(30))
        {
            throw Model.Validate.Fail(nameof(SessionLifetime), $"{SessionLifetime} is out of range; expected 1 minute to 30 days.");
        }
    }
}

/// <summary>The outcome of verifying a SIWE message: a status, a reason naming what is wrong, and the parsed message.</summary>
public sealed class SiweVerificationResult
{
    internal SiweVerificationResult(SiweStatus status, string reason, SiweMessage? message)
    {
        Status = status;
        Reason = reason;
        Message = message;
    }

    /// <summary><see cref="SiweStatus.Valid"/> or why the message was refused.</summary>
    public SiweStatus Status { get; }

    /// <summary>What is wrong (or <c>valid</c>).</summary>
    public string Reason { get; }

    /// <summary>The parsed message, when it parsed.</summary>
    public SiweMessage? Message { get; }

    /// <summary>True when <see cref="Status"/> is <see cref="SiweStatus.Valid"/>.</summary>
    public bool IsValid => Status == SiweStatus.Valid;

    /// <inheritdoc />
    public override string ToString() => $"{Status}: {Reason}";
}

/// <summary>
/// Verifies Sign-In with Ethereum messages statelessly: strict EIP-4361 parsing, the server's domain,
/// URI, chain and time window, and the EIP-191 <c>personal_sign</c> signature: the message hash from
/// Nethereum's <c>EthereumMessageSigner</c>, public-key recovery with the secp256k1 implementation
/// Nethereum.Signer ships (the tests check it agrees with Nethereum's <c>EthECKey</c> recovery). Only 65-byte signatures with v = 27 or 28 and a low s are accepted.
/// Nonce consumption is <see cref="SiweSignIn"/>'s job.
/// </summary>
public sealed class SiweVerifier
{
    // secp256k1 group order n and n/2, big-endian.
    private static readonly byte[] CurveOrder = Convert.FromHexString("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141");
    private static readonly byte[] HalfCurveOrder = Convert.FromHexString("7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0");

    private static readonly EthereumMessageSigner MessageSigner = new();

    private readonly SiweOptions _options;
    private readonly TimeProvider _time;

    /// <summary>Creates a verifier; throws <see cref="DeCloudValidationException"/> for bad options.</summary>
    public SiweVerifier(SiweOptions options, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The options in force.</summary>
    internal SiweOptions Options => _options;

    /// <summary>Verifies <paramref name="message"/> signed with <paramref name="signature"/> (0x + 130 hex digits).</summary>
    public SiweVerificationResult Verify(string? message, string? signature)
    {
        if (!TryParseMessage(message, out var parsed, out var failure))
        {
            return failure;
        }

        var checkedMessage = CheckExpectations(parsed);
        if (!checkedMessage.IsValid)
        {
            return checkedMessage;
        }

        if (!TryDecodeSignature(signature, out var sig))
        {
            return new SiweVerificationResult(SiweStatus.BadSignatureEncoding, "the signature must be 0x followed by exactly 130 hex digits (65 bytes).", parsed);
        }

        return VerifySignature(message!, sig, parsed);
    }

    /// <summary>Verifies <paramref name="message"/> signed with a raw 65-byte signature r || s || v.</summary>
    public SiweVerificationResult Verify(string? message, ReadOnlySpan<byte> signature)
    {
        if (!TryParseMessage(message, out var parsed, out var failure))
        {
            return failure;
        }

        var checkedMessage = CheckExpectations(parsed);
        if (!checkedMessage.IsValid)
        {
            return checkedMessage;
        }

        if (signature.Length != 65)
        {
            return new SiweVerificationResult(SiweStatus.BadSignatureEncoding, $"the signature is {signature.Length} bytes; exactly 65 are required.", parsed);
        }

        return VerifySignature(message!, signature.ToArray(), parsed);
    }

    /// <summary>Parses and checks only the signature, not the server's expectations (for published vectors whose times contradict each other).</summary>
    internal SiweVerificationResult VerifySignatureOnly(string message, string signature)
    {
        if (!TryParseMessage(message, out var parsed, out var failure))
        {
            return failure;
        }

        return TryDecodeSignature(signature, out var sig)
            ? VerifySignature(message, sig, parsed)
            : new SiweVerificationResult(SiweStatus.BadSignatureEncoding, "the signature must be 0x followed by exactly 130 hex digits (65 bytes).", parsed);
    }

    /// <summary>The EIP-191 <c>personal_sign</c> hash: keccak256("\x19Ethereum Signed Message:\n" + len + message).</summary>
    internal static byte[] PersonalSignHash(string message) => MessageSigner.HashPrefixedMessage(Encoding.UTF8.GetBytes(message));

    private static bool TryParseMessage(string? message, out SiweMessage parsed, out SiweVerificationResult failure)
    {
        if (SiweMessage.TryParse(message, out var m, out var error))
        {
            parsed = m;
            failure = null!;
            return true;
        }

        parsed = null!;
        failure = new SiweVerificationResult(SiweStatus.Malformed, error, null);
        return false;
    }

    private SiweVerificationResult CheckExpectations(SiweMessage m)
    {
        var o = _options;
        if (!string.Equals(m.Domain, o.Domain, StringComparison.OrdinalIgnoreCase)
            || (o.Scheme is not null && m.Scheme is not null && !string.Equals(m.Scheme, o.Scheme, StringComparison.OrdinalIgnoreCase)))
        {
            return new SiweVerificationResult(SiweStatus.WrongDomain, $"the message is for '{m.Scheme}{(m.Scheme is null ? "" : "://")}{m.Domain}', not '{o.Domain}'.", m);
        }

        if (!System.Uri.TryCreate(m.Uri, UriKind.Absolute, out var uri)
            || System.Uri.Compare(uri, o.ParsedUri, UriComponents.SchemeAndServer | UriComponents.Port, UriFormat.UriEscaped, StringComparison.OrdinalIgnoreCase) != 0)
        {
            return new SiweVerificationResult(SiweStatus.WrongUri, $"the message's URI '{m.Uri}' is not on {o.ParsedUri.GetLeftPart(UriPartial.Authority)}.", m);
        }

        if (m.ChainId != o.ChainId)
        {
            return new SiweVerificationResult(SiweStatus.WrongChainId, $"the message names chain {m.ChainId}, not {o.ChainId}.", m);
        }

        var now = _time.GetUtcNow();
        if (m.IssuedAt > now + o.ClockSkew)
        {
            return new SiweVerificationResult(SiweStatus.IssuedInFuture, $"issued-at {m.IssuedAt:O} is in the future (now {now:O}).", m);
        }

        if (o.MaxMessageAge is { } age && now - m.IssuedAt > age + o.ClockSkew)
        {
            return new SiweVerificationResult(SiweStatus.TooOld, $"issued-at {m.IssuedAt:O} is older than {age}.", m);
        }

        if (m.NotBefore is { } nbf && nbf > now + o.ClockSkew)
        {
            return new SiweVerificationResult(SiweStatus.NotYetValid, $"not valid before {nbf:O} (now {now:O}).", m);
        }

        if (m.ExpirationTime is { } exp && exp + o.ClockSkew <= now)
        {
            return new SiweVerificationResult(SiweStatus.Expired, $"expired at {exp:O} (now {now:O}).", m);
        }

        return new SiweVerificationResult(SiweStatus.Valid, "valid", m);
    }

    private static SiweVerificationResult VerifySignature(string message, byte[] sig, SiweMessage parsed)
    {
        Span<byte> recovered = stackalloc byte[20];
        if (RecoverSigner(message, sig, recovered) is { } failure)
        {
            return new SiweVerificationResult(failure.Status, failure.Error, parsed);
        }

        Span<byte> expected = stackalloc byte[20];
        Convert.FromHexString(parsed.Address.ToLowerHex().AsSpan(2), expected, out _, out _);
        if (!recovered.SequenceEqual(expected))
        {
            return new SiweVerificationResult(SiweStatus.AddressMismatch,
                $"the signature was made by 0x{Convert.ToHexStringLower(recovered)}, not by {parsed.Address}.", parsed);
        }

        return new SiweVerificationResult(SiweStatus.Valid, "valid", parsed);
    }

    /// <summary>
    /// Checks a 65-byte EIP-191 signature (v 27 or 28, r and s in 1..n-1, low S) and recovers the 20-byte address that
    /// signed <paramref name="message"/> into <paramref name="recovered"/>; null when it did, else why not.
    /// </summary>
    internal static (SiweStatus Status, string Error)? RecoverSigner(string message, ReadOnlySpan<byte> sig, Span<byte> recovered)
    {
        var v = sig[64];
        if (v is not (27 or 28))
        {
            return (SiweStatus.BadRecoveryId, $"the recovery byte v is {v}; only 27 and 28 are accepted.");
        }

        var r = sig[..32];
        var s = sig.Slice(32, 32);
        if (IsZero(r) || IsZero(s) || r.SequenceCompareTo(CurveOrder) >= 0 || s.SequenceCompareTo(CurveOrder) >= 0)
        {
            return (SiweStatus.SignatureOutOfRange, "r and s must lie in 1..n-1.");
        }

        if (s.SequenceCompareTo(HalfCurveOrder) > 0)
        {
            return (SiweStatus.HighS, "s is in the upper half of the curve order; only low-S signatures are accepted.");
        }

        // Some (r, v) pairs name no curve point: that is a signature of nobody, not a server error.
        return Secp256k1Recovery.TryRecoverAddress(PersonalSignHash(message), sig[..64], v - 27, recovered)
            ? null
            : (SiweStatus.AddressMismatch, "the signature recovers to no public key.");
    }

    internal static bool TryDecodeSignature(string? hex, out byte[] signature)
    {
        signature = [];
        if (hex is null || hex.Length != 132 || hex[0] != '0' || hex[1] != 'x')
        {
            return false;
        }

        var bytes = new byte[65];
        if (Convert.FromHexString(hex.AsSpan(2), bytes, out _, out var written) != System.Buffers.OperationStatus.Done || written != 65)
        {
            return false;
        }

        signature = bytes;
        return true;
    }

    private static bool IsZero(ReadOnlySpan<byte> value) => !value.ContainsAnyExcept((byte)0);
}
