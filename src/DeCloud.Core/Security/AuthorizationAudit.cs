using DeCloud.Core.Model;

namespace DeCloud.Core.Security;

/// <summary>Whether an authorization decision let the request through.</summary>
public enum AuthorizationOutcome
{
    /// <summary>Access granted.</summary>
    Allow = 1,

    /// <summary>Access refused.</summary>
    Deny = 2,
}

/// <summary>One allow or deny decision with its reason.</summary>
/// <param name="Timestamp">When it was decided.</param>
/// <param name="Outcome">Allow or deny.</param>
/// <param name="Source">What decided: <c>token</c>, <c>node-token</c>, <c>cache</c>, <c>orchestrator</c>, <c>offline-cache</c>, <c>siwe</c>.</param>
/// <param name="Reason">Why, in a short constant sentence (for a token: <see cref="TokenStatusText.Describe"/>).</param>
/// <param name="Subject">The wallet (lower-case hex) or node id, when known.</param>
/// <param name="Vm">The VM asked for, when any.</param>
/// <param name="Project">The project asked for, when any.</param>
/// <param name="Scope">The scope asked for.</param>
public readonly record struct AuthorizationAuditEntry(
    DateTimeOffset Timestamp,
    AuthorizationOutcome Outcome,
    string Source,
    string Reason,
    string? Subject,
    VmId? Vm,
    string? Project,
    TokenScopes Scope);

/// <summary>
/// Where every allow and deny is written. <see cref="Record"/> is called on hot paths: it must not
/// block or throw (a durable implementation buffers and writes in the background).
/// </summary>
public interface IAuthorizationAuditLog
{
    /// <summary>Records one decision.</summary>
    void Record(in AuthorizationAuditEntry entry);
}

/// <summary>An audit log that keeps the most recent entries in memory (a bounded ring).</summary>
public sealed class InMemoryAuthorizationAuditLog : IAuthorizationAuditLog
{
    private readonly AuthorizationAuditEntry[] _ring;
    private readonly object _gate = new();
    private long _count;

    /// <summary>Creates a log that keeps the last <paramref name="capacity"/> entries.</summary>
    public InMemoryAuthorizationAuditLog(int capacity = 10_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _ring = new AuthorizationAuditEntry[capacity];
    }

    /// <summary>How many entries were recorded in total (including those the ring no longer holds).</summary>
    public long TotalRecorded => Interlocked.Read(ref _count);

    /// <inheritdoc />
    public void Record(in AuthorizationAuditEntry entry)
    {
        lock (_gate)
        {
            _ring[_count % _ring.Length] = entry;
            _count++;
        }
    }

    /// <summary>The entries held, oldest first.</summary>
    public IReadOnlyList<AuthorizationAuditEntry> Snapshot()
    {
        lock (_gate)
        {
            var held = (int)Math.Min(_count, _ring.Length);
            var result = new AuthorizationAuditEntry[held];
            for (var i = 0; i < held; i++)
            {
                result[i] = _ring[(_count - held + i) % _ring.Length];
            }

            return result;
        }
    }
}
