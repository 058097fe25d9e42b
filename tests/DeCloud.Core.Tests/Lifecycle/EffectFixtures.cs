using System.Collections.Concurrent;
using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;

namespace DeCloud.Core.Tests.Lifecycle;

/// <summary>Thrown by <see cref="CrashingVmStore"/> to stand for the process dying at that point.</summary>
internal sealed class SimulatedCrashException : Exception
{
    public SimulatedCrashException() : base("simulated crash")
    {
    }

    public SimulatedCrashException(string message) : base(message)
    {
    }

    public SimulatedCrashException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>An <see cref="IVmStore"/> that "dies" right before marking chosen effects done.</summary>
internal sealed class CrashingVmStore(IVmStore inner) : IVmStore
{
    public Func<string, bool> CrashBeforeComplete { get; set; } = _ => false;

    public Task<bool> InsertAsync(VmRecord vm, VmTransition creation, IReadOnlyList<string> effects, DateTimeOffset dueAt, CancellationToken cancellationToken = default) =>
        inner.InsertAsync(vm, creation, effects, dueAt, cancellationToken);

    public Task<bool> ApplyTransitionAsync(VmRecord updated, long expectedVersion, VmTransition transition, IReadOnlyList<string> effects, DateTimeOffset dueAt, CancellationToken cancellationToken = default) =>
        inner.ApplyTransitionAsync(updated, expectedVersion, transition, effects, dueAt, cancellationToken);

    public Task<VmRecord?> GetAsync(VmId id, CancellationToken cancellationToken = default) => inner.GetAsync(id, cancellationToken);

    public Task<IReadOnlyList<VmRecord>> ListAsync(VmState? state = null, NodeId? node = null, CancellationToken cancellationToken = default) =>
        inner.ListAsync(state, node, cancellationToken);

    public Task<IReadOnlyList<VmTransition>> GetHistoryAsync(VmId id, CancellationToken cancellationToken = default) => inner.GetHistoryAsync(id, cancellationToken);

    public Task<IReadOnlyList<VmEffectEntry>> GetDueEffectsAsync(DateTimeOffset now, int max, CancellationToken cancellationToken = default) =>
        inner.GetDueEffectsAsync(now, max, cancellationToken);

    public Task<DateTimeOffset?> GetNextDueAsync(CancellationToken cancellationToken = default) => inner.GetNextDueAsync(cancellationToken);

    public Task<IReadOnlyList<VmEffectEntry>> GetEffectsAsync(VmId id, CancellationToken cancellationToken = default) => inner.GetEffectsAsync(id, cancellationToken);

    public Task<bool> CompleteEffectAsync(string effectId, int attempts, DateTimeOffset at, CancellationToken cancellationToken = default) =>
        CrashBeforeComplete(effectId) ? throw new SimulatedCrashException() : inner.CompleteEffectAsync(effectId, attempts, at, cancellationToken);

    public Task FailEffectAsync(string effectId, int attempts, DateTimeOffset? nextAttemptAt, string error, CancellationToken cancellationToken = default) =>
        inner.FailEffectAsync(effectId, attempts, nextAttemptAt, error, cancellationToken);

    public Task<bool> RequeueEffectAsync(string effectId, DateTimeOffset dueAt, CancellationToken cancellationToken = default) =>
        inner.RequeueEffectAsync(effectId, dueAt, cancellationToken);
}

/// <summary>
/// A real, idempotent effect: it writes its idempotency key into a SQLite table (INSERT OR IGNORE),
/// and counts invocations in memory. "Applied" = rows in the table.
/// </summary>
internal sealed class LedgerEffect : IVmEffect
{
    private readonly SqliteDatabase _db;

    public LedgerEffect(SqliteDatabase db, string name = "ledger")
    {
        _db = db;
        Name = name;
        db.Migrate("test-ledger", ["CREATE TABLE effect_ledger (key TEXT PRIMARY KEY, effect TEXT NOT NULL, vm TEXT NOT NULL, seq INTEGER NOT NULL);"]);
    }

    public string Name { get; }

    public ConcurrentDictionary<string, int> Invocations { get; } = new();

    public Func<VmEffectContext, bool> FailWhen { get; set; } = _ => false;

    public ValueTask ExecuteAsync(VmEffectContext context, CancellationToken cancellationToken)
    {
        Invocations.AddOrUpdate(context.IdempotencyKey, 1, (_, n) => n + 1);
        if (FailWhen(context))
        {
            throw new InvalidOperationException($"{Name} failed on purpose (attempt {context.Attempt})");
        }

        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "INSERT OR IGNORE INTO effect_ledger (key, effect, vm, seq) VALUES ($k, $e, $v, $s);";
        cmd.Parameters.AddWithValue("$k", context.IdempotencyKey);
        cmd.Parameters.AddWithValue("$e", context.Effect);
        cmd.Parameters.AddWithValue("$v", context.Transition.VmId.ToString());
        cmd.Parameters.AddWithValue("$s", context.Transition.Sequence);
        cmd.ExecuteNonQuery();
        return ValueTask.CompletedTask;
    }

    public HashSet<string> AppliedKeys()
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT key FROM effect_ledger WHERE effect = $e;";
        cmd.Parameters.AddWithValue("$e", Name);
        using var r = cmd.ExecuteReader();
        var set = new HashSet<string>(StringComparer.Ordinal);
        while (r.Read())
        {
            set.Add(r.GetString(0));
        }

        return set;
    }
}
