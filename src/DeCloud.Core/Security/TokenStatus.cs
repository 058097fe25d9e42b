namespace DeCloud.Core.Security;

/// <summary>
/// The outcome of validating a token: <see cref="Valid"/> or the precise reason it was refused.
/// Hostile or malformed input always maps to one of these values, never to an exception.
/// </summary>
public enum TokenStatus
{
    /// <summary>The token is authentic, current and meant for this validator.</summary>
    Valid = 0,

    /// <summary>Empty, or not made of a header, a body and at most one footer separated by dots.</summary>
    Malformed,

    /// <summary>Longer than the configured maximum; refused before any decoding.</summary>
    Oversized,

    /// <summary>The header names another PASETO version (only <c>v4</c> is accepted).</summary>
    WrongVersion,

    /// <summary>The header names another PASETO purpose (only <c>public</c> is accepted).</summary>
    WrongPurpose,

    /// <summary>The body or footer is not canonical unpadded base64url.</summary>
    BadEncoding,

    /// <summary>The body is too short to hold an Ed25519 signature.</summary>
    Truncated,

    /// <summary>The footer is missing, is not the expected JSON object, or has no key id.</summary>
    MissingKeyId,

    /// <summary>The key id is not in the verification key set.</summary>
    UnknownKey,

    /// <summary>The key id names a key that has been retired.</summary>
    RetiredKey,

    /// <summary>The Ed25519 signature does not verify: the token was forged or altered.</summary>
    BadSignature,

    /// <summary>The signed claims are not a JSON object of the expected shape (missing, duplicate or ill-typed claims).</summary>
    BadClaims,

    /// <summary>Another issuer signed it.</summary>
    WrongIssuer,

    /// <summary>It was issued for another host, relay or orchestrator.</summary>
    WrongAudience,

    /// <summary>It is another kind of DeCloud token (a node token where a connect token was expected, or the reverse).</summary>
    WrongTokenKind,

    /// <summary>Its expiry has passed (beyond the allowed clock skew).</summary>
    Expired,

    /// <summary>Its not-before time has not come yet (beyond the allowed clock skew).</summary>
    NotYetValid,

    /// <summary>Its issued-at time lies in the future (beyond the allowed clock skew).</summary>
    IssuedInFuture,

    /// <summary>Its lifetime is longer than the validator accepts.</summary>
    LifetimeTooLong,

    /// <summary>Its token id has been revoked.</summary>
    Revoked,

    /// <summary>Its subject (wallet or node) has been revoked since the token was issued.</summary>
    SubjectRevoked,

    /// <summary>Valid, but it does not grant the requested VM, project or scope.</summary>
    NotGranted,
}

/// <summary>Human-readable reasons for <see cref="TokenStatus"/> values (constant strings, no allocation).</summary>
public static class TokenStatusText
{
    /// <summary>A short sentence saying why a token was refused (or that it is valid).</summary>
    public static string Describe(TokenStatus status) => status switch
    {
        TokenStatus.Valid => "valid",
        TokenStatus.Malformed => "malformed token: expected header.body[.footer]",
        TokenStatus.Oversized => "token longer than the configured maximum",
        TokenStatus.WrongVersion => "wrong PASETO version: expected v4",
        TokenStatus.WrongPurpose => "wrong PASETO purpose: expected public",
        TokenStatus.BadEncoding => "body or footer is not canonical unpadded base64url",
        TokenStatus.Truncated => "body too short to hold a signature",
        TokenStatus.MissingKeyId => "footer has no key id",
        TokenStatus.UnknownKey => "unknown key id",
        TokenStatus.RetiredKey => "key id names a retired key",
        TokenStatus.BadSignature => "signature does not verify",
        TokenStatus.BadClaims => "claims are missing, duplicated or ill-typed",
        TokenStatus.WrongIssuer => "issued by another issuer",
        TokenStatus.WrongAudience => "issued for another audience",
        TokenStatus.WrongTokenKind => "another kind of token (connect, node or move)",
        TokenStatus.Expired => "expired",
        TokenStatus.NotYetValid => "not valid yet",
        TokenStatus.IssuedInFuture => "issued in the future",
        TokenStatus.LifetimeTooLong => "lifetime longer than allowed",
        TokenStatus.Revoked => "token id revoked",
        TokenStatus.SubjectRevoked => "subject revoked",
        TokenStatus.NotGranted => "token does not grant this VM, project or scope",
        _ => "unknown status",
    };
}
