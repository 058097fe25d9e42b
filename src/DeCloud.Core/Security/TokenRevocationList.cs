using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using DeCloud.Core.Model;

namespace DeCloud.Core.Security;

/// <summary>A revoked token id, kept until the token would have expired anyway.</summary>
/// <param name="TokenId">The token's <c>jti</c>.</param>
/// <param name="ExpiresAt">The token's expiry; the entry can be dropped after it.</param>
/// <param name="Sequence">The revocation list sequence number at which it was revoked.</param>
public sealed record RevokedToken(
    [property: JsonPropertyName("jti")] Guid TokenId,
    [property: JsonPropertyName("exp")] DateTimeOffset ExpiresAt,
    [property: JsonPropertyName("seq")] long Sequence);

/// <summary>A revoked subject (a wallet or a node): every token issued to it at or before <paramref name="IssuedUpTo"/> is refused.</summary>
/// <param name="Subject">The wallet address (lower-case hex with 0x) or the node id (64 hex digits).</param>
/// <param name="IssuedUpTo">Tokens issued at or before this instant are refused.</param>
/// <param name="Sequence">The revocation list sequence number at which it was revoked.</param>
public sealed record RevokedSubject(
    [property: JsonPropertyName("sub")] string Subject,
    [property: JsonPropertyName("iat_max")] DateTimeOffset IssuedUpTo,
    [property: JsonPropertyName("seq")] long Sequence);

/// <summary>Revocations the orchestrator pushes to hosts: the entries after a sequence number.</summary>
/// <param name="Sequence">The highest sequence number the update covers.</param>
/// <param name="Tokens">Revoked token ids.</param>
/// <param name="Subjects">Revoked subjects.</param>
public sealed record TokenRevocationUpdate(
    [property: JsonPropertyName("seq")] long Sequence,
    [property: JsonPropertyName("tokens")] IReadOnlyList<RevokedToken> Tokens,
    [property: JsonPropertyName("subjects")] IReadOnlyList<RevokedSubject> Subjects)
{
    /// <summary>The JSON form.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, SecurityJsonContext.Default.TokenRevocationUpdate);

    /// <summary>Parses the JSON form; throws <see cref="DeCloudValidationException"/> naming what is wrong.</summary>
    public static TokenRevocationUpdate FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            var u = JsonSerializer.Deserialize(json, SecurityJsonContext.Default.TokenRevocationUpdate);
            return u is { Tokens: not null, Subjects: not null } ? u : throw Validate.Fail("revocationUpdate", "is missing tokens or subjects.");
        }
        catch (JsonException e)
        {
            throw Validate.Fail("revocationUpdate", $"is not valid revocation JSON: {e.Message}");
        }
    }
}

/// <summary>
/// Revoked token ids and subjects, checked on every validation with O(1) lock-free lookups. The
/// orchestrator revokes and hands out <see cref="GetUpdate"/>; hosts <see cref="Apply"/> what it pushes.
/// </summary>
public sealed class TokenRevocationList
{
    private readonly ConcurrentDictionary<Guid, RevokedToken> _tokens = new();
    private readonly ConcurrentDictionary<string, RevokedSubject> _subjects = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, RevokedSubject>.AlternateLookup<ReadOnlySpan<char>> _subjectLookup;
    private readonly object _writeGate = new();
    private readonly TimeProvider _time;
    private long _sequence;

    /// <summary>Creates an empty list.</summary>
    public TokenRevocationList(TimeProvider? timeProvider = null)
    {
        _time = timeProvider ?? TimeProvider.System;
        _subjectLookup = _subjects.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The highest sequence number held.</summary>
    public long Sequence => Interlocked.Read(ref _sequence);

    /// <summary>Raised after a subject is revoked (locally or by an applied update), e.g. to drop cached decisions.</summary>
    public event Action<string>? SubjectRevoked;

    /// <summary>Revokes one token until <paramref name="expiresAt"/>.</summary>
    public void RevokeToken(Guid tokenId, DateTimeOffset expiresAt)
    {
        lock (_writeGate)
        {
            var seq = ++_sequence;
            _tokens[tokenId] = new RevokedToken(tokenId, expiresAt, seq);
        }
    }

    /// <summary>Revokes every token issued to <paramref name="wallet"/> up to now.</summary>
    public void RevokeSubject(WalletAddress wallet) => RevokeSubject(wallet.ToLowerHex(), _time.GetUtcNow());

    /// <summary>Revokes every node token issued to <paramref name="node"/> up to now.</summary>
    public void RevokeSubject(NodeId node) => RevokeSubject(node.Value, _time.GetUtcNow());

    /// <summary>Revokes every token of <paramref name="subject"/> issued at or before <paramref name="issuedUpTo"/>.</summary>
    public void RevokeSubject(string subject, DateTimeOffset issuedUpTo)
    {
        ArgumentException.ThrowIfNullOrEmpty(subject);
        var key = subject.ToLowerInvariant();
        lock (_writeGate)
        {
            var seq = ++_sequence;
            _subjects.AddOrUpdate(key, new RevokedSubject(key, issuedUpTo, seq),
                (_, old) => new RevokedSubject(key, old.IssuedUpTo > issuedUpTo ? old.IssuedUpTo : issuedUpTo, seq));
        }

        SubjectRevoked?.Invoke(key);
    }

    /// <summary>The entries with a sequence number above <paramref name="sinceSequence"/> (0 for everything).</summary>
    public TokenRevocationUpdate GetUpdate(long sinceSequence = 0)
    {
        lock (_writeGate)
        {
            var tokens = _tokens.Values.Where(t => t.Sequence > sinceSequence).OrderBy(t => t.Sequence).ToList();
            var subjects = _subjects.Values.Where(s => s.Sequence > sinceSequence).OrderBy(s => s.Sequence).ToList();
            return new TokenRevocationUpdate(_sequence, tokens, subjects);
        }
    }

    /// <summary>Merges an update pushed by the orchestrator (idempotent; entries only ever tighten).</summary>
    public void Apply(TokenRevocationUpdate update)
    {
        ArgumentNullException.ThrowIfNull(update);
        var revokedSubjects = new List<string>();
        lock (_writeGate)
        {
            foreach (var t in update.Tokens)
            {
                _tokens.AddOrUpdate(t.TokenId, t, (_, old) => old.ExpiresAt >= t.ExpiresAt ? old : t);
            }

            foreach (var s in update.Subjects)
            {
                if (string.IsNullOrEmpty(s.Subject))
                {
                    throw Validate.Fail("revocationUpdate.subjects", "contains an empty subject.");
                }

                var key = s.Subject.ToLowerInvariant();
                _subjects.AddOrUpdate(key, s with { Subject = key }, (_, old) => old.IssuedUpTo >= s.IssuedUpTo ? old : s with { Subject = key });
                revokedSubjects.Add(key);
            }

            _sequence = Math.Max(_sequence, update.Sequence);
        }

        foreach (var s in revokedSubjects)
        {
            SubjectRevoked?.Invoke(s);
        }
    }

    /// <summary>
    /// Drops token entries whose token has expired and subject entries older than
    /// <paramref name="maxTokenLifetime"/> (no token they cover can still be valid). Returns how many were dropped.
    /// </summary>
    public int Prune(TimeSpan maxTokenLifetime)
    {
        var now = _time.GetUtcNow();
        var dropped = 0;
        foreach (var (id, t) in _tokens)
        {
            if (t.ExpiresAt < now && _tokens.TryRemove(new KeyValuePair<Guid, RevokedToken>(id, t)))
            {
                dropped++;
            }
        }

        foreach (var (sub, s) in _subjects)
        {
            if (s.IssuedUpTo + maxTokenLifetime < now && _subjects.TryRemove(new KeyValuePair<string, RevokedSubject>(sub, s)))
            {
                dropped++;
            }
        }

        return dropped;
    }

    /// <summary>True when <paramref name="tokenId"/> is revoked.</summary>
    public bool IsTokenRevoked(Guid tokenId) => _tokens.ContainsKey(tokenId);

    /// <summary>True when a token of <paramref name="subject"/> (lower-case) issued at <paramref name="issuedAt"/> is revoked.</summary>
    public bool IsSubjectRevoked(ReadOnlySpan<char> subject, DateTimeOffset issuedAt) =>
        _subjectLookup.TryGetValue(subject, out var s) && issuedAt <= s.IssuedUpTo;
}
