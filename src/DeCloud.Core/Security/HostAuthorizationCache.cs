using System.Collections.Concurrent;
using DeCloud.Core.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Core.Security;

/// <summary>What a host asks: may this wallet use this scope on this VM?</summary>
/// <param name="Wallet">The wallet.</param>
/// <param name="Vm">The VM.</param>
/// <param name="Scope">The scope.</param>
public readonly record struct AuthorizationKey(WalletAddress Wallet, VmId Vm, TokenScopes Scope);

/// <summary>
/// The orchestrator's answer to an <see cref="AuthorizationKey"/>, as seen from a host. Implementations
/// throw (any exception) when the orchestrator cannot be reached; the cache then serves from memory.
/// </summary>
public interface IAuthorizationSource
{
    /// <summary>True to allow, false to deny; throws when the orchestrator is unreachable.</summary>
    ValueTask<bool> IsAllowedAsync(AuthorizationKey key, CancellationToken cancellationToken = default);
}

/// <summary>Where a host-side decision came from.</summary>
public enum AuthorizationDecisionSource
{
    /// <summary>A cached decision younger than the TTL.</summary>
    Cache = 1,

    /// <summary>A fresh answer from the orchestrator.</summary>
    Orchestrator = 2,

    /// <summary>A cached decision older than the TTL, served because the orchestrator is unreachable (within the offline bound).</summary>
    OfflineCache = 3,

    /// <summary>Denied because the orchestrator is unreachable and no decision within the offline bound exists.</summary>
    FailClosed = 4,
}

/// <summary>A host-side authorization decision.</summary>
/// <param name="Outcome">Allow or deny.</param>
/// <param name="Source">Where it came from.</param>
/// <param name="DecidedAt">When the orchestrator made the underlying decision (or now for fail-closed).</param>
public readonly record struct AuthorizationDecision(AuthorizationOutcome Outcome, AuthorizationDecisionSource Source, DateTimeOffset DecidedAt)
{
    /// <summary>True when allowed.</summary>
    public bool IsAllowed => Outcome == AuthorizationOutcome.Allow;

    /// <summary>A short constant sentence saying why.</summary>
    public string Reason => HostAuthorizationCache.Describe(Outcome, Source);
}

/// <summary>Options of a <see cref="HostAuthorizationCache"/>.</summary>
public sealed class HostAuthorizationCacheOptions
{
    /// <summary>How long a decision is served without asking the orchestrator again. Default 60 seconds.</summary>
    public TimeSpan Ttl { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The oldest decision served while the orchestrator is unreachable; beyond it the cache fails
    /// closed (denies). Must be at least <see cref="Ttl"/>. Default 15 minutes.
    /// </summary>
    public TimeSpan MaxOfflineAge { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How long to wait for the orchestrator before treating it as unreachable. Default 5 seconds.</summary>
    public TimeSpan QueryTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Entries kept at most; beyond it decisions older than the offline bound are pruned. Default 100,000.</summary>
    public int MaxEntries { get; set; } = 100_000;

    internal void Validate()
    {
        if (Ttl <= TimeSpan.Zero || Ttl > TimeSpan.FromHours(1))
        {
            throw Model.Validate.Fail(nameof(Ttl), $"{Ttl} is out of range; expected more than 0 and at most 1 hour.");
        }

        if (MaxOfflineAge < Ttl || MaxOfflineAge > TimeSpan.FromDays(7))
        {
            throw Model.Validate.Fail(nameof(MaxOfflineAge), $"{MaxOfflineAge} is out of range; expected Ttl ({Ttl}) to 7 days.");
        }

        if (QueryTimeout <= TimeSpan.Zero || QueryTimeout > TimeSpan.FromMinutes(1))
        {
            throw Model.Validate.Fail(nameof(QueryTimeout), $"{QueryTimeout} is out of range; expected more than 0 and at most 1 minute.");
        }

        Model.Validate.Range(MaxEntries, 16, 10_000_000, nameof(MaxEntries));
    }
}

/// <summary>
/// A host's cache of the orchestrator's authorization decisions, keyed by (wallet, VM, scope). Hits
/// are a lock-free dictionary read on a struct key. A decision older than the TTL is refreshed from
/// the orchestrator; while the orchestrator is unreachable the last decision keeps being served up
/// to <see cref="HostAuthorizationCacheOptions.MaxOfflineAge"/>, then the cache fails closed.
/// Every decision is written to the audit log with its reason.
/// </summary>
public sealed partial class HostAuthorizationCache
{
    private readonly ConcurrentDictionary<AuthorizationKey, Entry> _entries = new();
    private readonly IAuthorizationSource _source;
    private readonly HostAuthorizationCacheOptions _options;
    private readonly IAuthorizationAuditLog? _audit;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>Creates the cache.</summary>
    /// <param name="source">The orchestrator client.</param>
    /// <param name="options">TTL and offline bound.</param>
    /// <param name="audit">Where every decision is recorded (null for none).</param>
    /// <param name="revocations">When given, a revoked subject's cached decisions are dropped at once.</param>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="logger">Logs offline serving and fail-closed decisions.</param>
    public HostAuthorizationCache(IAuthorizationSource source, HostAuthorizationCacheOptions? options = null, IAuthorizationAuditLog? audit = null,
        TokenRevocationList? revocations = null, TimeProvider? timeProvider = null, ILogger<HostAuthorizationCache>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        _options = options ?? new HostAuthorizationCacheOptions();
        _options.Validate();
        _source = source;
        _audit = audit;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        if (revocations is not null)
        {
            revocations.SubjectRevoked += Invalidate;
        }
    }

    /// <summary>The number of cached decisions.</summary>
    public int Count => _entries.Count;

    /// <summary>Decides whether <paramref name="wallet"/> may use <paramref name="scope"/> on <paramref name="vm"/>.</summary>
    public ValueTask<AuthorizationDecision> AuthorizeAsync(WalletAddress wallet, VmId vm, TokenScopes scope, CancellationToken cancellationToken = default)
    {
        var key = new AuthorizationKey(wallet, vm, scope);
        var now = _time.GetUtcNow();
        if (_entries.TryGetValue(key, out var entry) && now - entry.DecidedAt < _options.Ttl)
        {
            return new ValueTask<AuthorizationDecision>(Decide(key, entry.Outcome, AuthorizationDecisionSource.Cache, entry.DecidedAt, now));
        }

        return RefreshAsync(key, entry, cancellationToken);
    }

    /// <summary>Drops every cached decision about <paramref name="subject"/> (a wallet in lower-case hex).</summary>
    public void Invalidate(string subject)
    {
        foreach (var key in _entries.Keys)
        {
            if (string.Equals(key.Wallet.ToLowerHex(), subject, StringComparison.OrdinalIgnoreCase))
            {
                _entries.TryRemove(key, out _);
            }
        }
    }

    /// <summary>Drops every cached decision about <paramref name="wallet"/>.</summary>
    public void Invalidate(WalletAddress wallet) => Invalidate(wallet.ToLowerHex());

    /// <summary>Drops decisions too old to be served even offline. Returns how many were dropped.</summary>
    public int Prune()
    {
        var now = _time.GetUtcNow();
        var dropped = 0;
        foreach (var (key, entry) in _entries)
        {
            if (now - entry.DecidedAt >= _options.MaxOfflineAge && _entries.TryRemove(new KeyValuePair<AuthorizationKey, Entry>(key, entry)))
            {
                dropped++;
            }
        }

        return dropped;
    }

    internal static string Describe(AuthorizationOutcome outcome, AuthorizationDecisionSource source) => (outcome, source) switch
    {
        (AuthorizationOutcome.Allow, AuthorizationDecisionSource.Cache) => "allowed by a cached orchestrator decision",
        (AuthorizationOutcome.Deny, AuthorizationDecisionSource.Cache) => "denied by a cached orchestrator decision",
        (AuthorizationOutcome.Allow, AuthorizationDecisionSource.Orchestrator) => "allowed by the orchestrator",
        (AuthorizationOutcome.Deny, AuthorizationDecisionSource.Orchestrator) => "denied by the orchestrator",
        (AuthorizationOutcome.Allow, AuthorizationDecisionSource.OfflineCache) => "allowed by a cached decision while the orchestrator is unreachable",
        (AuthorizationOutcome.Deny, AuthorizationDecisionSource.OfflineCache) => "denied by a cached decision while the orchestrator is unreachable",
        _ => "denied: the orchestrator is unreachable and no decision is within the offline bound (fail closed)",
    };

    private async ValueTask<AuthorizationDecision> RefreshAsync(AuthorizationKey key, Entry? stale, CancellationToken cancellationToken)
    {
        bool allowed;
        using (var timeout = new CancellationTokenSource(_options.QueryTimeout, _time))
        using (var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken))
        {
            try
            {
                allowed = await _source.IsAllowedAsync(key, linked.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                return Offline(key, stale, e);
            }
        }

        var now = _time.GetUtcNow();
        var entry = new Entry(allowed ? AuthorizationOutcome.Allow : AuthorizationOutcome.Deny, now);
        _entries[key] = entry;
        if (_entries.Count > _options.MaxEntries)
        {
            Prune();
        }

        return Decide(key, entry.Outcome, AuthorizationDecisionSource.Orchestrator, now, now);
    }

    private AuthorizationDecision Offline(AuthorizationKey key, Entry? stale, Exception error)
    {
        var now = _time.GetUtcNow();
        if (stale is not null && now - stale.DecidedAt < _options.MaxOfflineAge)
        {
            Log.ServingOffline(_logger, key.Wallet.ToString(), key.Vm.ToString(), now - stale.DecidedAt, error.Message);
            return Decide(key, stale.Outcome, AuthorizationDecisionSource.OfflineCache, stale.DecidedAt, now);
        }

        Log.FailClosed(_logger, key.Wallet.ToString(), key.Vm.ToString(), _options.MaxOfflineAge, error.Message);
        return Decide(key, AuthorizationOutcome.Deny, AuthorizationDecisionSource.FailClosed, now, now);
    }

    private AuthorizationDecision Decide(AuthorizationKey key, AuthorizationOutcome outcome, AuthorizationDecisionSource source, DateTimeOffset decidedAt, DateTimeOffset now)
    {
        var decision = new AuthorizationDecision(outcome, source, decidedAt);
        _audit?.Record(new AuthorizationAuditEntry(now, outcome, SourceName(source), decision.Reason, key.Wallet.ToLowerHex(), key.Vm, null, key.Scope));
        SecurityMetrics.Decided(outcome, SourceName(source));
        return decision;
    }

    private static string SourceName(AuthorizationDecisionSource source) => source switch
    {
        AuthorizationDecisionSource.Cache => "cache",
        AuthorizationDecisionSource.Orchestrator => "orchestrator",
        AuthorizationDecisionSource.OfflineCache => "offline-cache",
        _ => "fail-closed",
    };

    private sealed record Entry(AuthorizationOutcome Outcome, DateTimeOffset DecidedAt);

    private static partial class Log
    {
        [LoggerMessage(EventId = 5201, Level = LogLevel.Warning,
            Message = "Orchestrator unreachable; serving a {Age} old decision for {Wallet} on VM {Vm}: {Error}")]
        public static partial void ServingOffline(ILogger logger, string wallet, string vm, TimeSpan age, string error);

        [LoggerMessage(EventId = 5202, Level = LogLevel.Warning,
            Message = "Orchestrator unreachable and no decision younger than {Bound} for {Wallet} on VM {Vm}: failing closed: {Error}")]
        public static partial void FailClosed(ILogger logger, string wallet, string vm, TimeSpan bound, string error);
    }
}
