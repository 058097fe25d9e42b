using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;
using Microsoft.Data.Sqlite;

namespace DeCloud.Core.Lifecycle;

/// <summary>
/// <see cref="IVmStore"/> on SQLite: tables <c>vms</c>, <c>vm_transitions</c> and <c>vm_effects</c>
/// (the outbox), created by the <c>lifecycle</c> migrations. Every write is one transaction.
/// </summary>
public sealed class SqliteVmStore : IVmStore
{
    /// <summary>The migration component name.</summary>
    public const string Component = "lifecycle";

    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE vms (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            compute_points INTEGER NOT NULL,
            memory_mib INTEGER NOT NULL,
            storage_gib INTEGER NOT NULL,
            gpus INTEGER NOT NULL,
            gpu_model TEXT NULL,
            quality_tier INTEGER NOT NULL,
            bandwidth_tier INTEGER NOT NULL,
            architecture INTEGER NOT NULL,
            state INTEGER NOT NULL,
            node_id TEXT NULL,
            version INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX vms_state ON vms(state);
        CREATE INDEX vms_node ON vms(node_id);
        CREATE TABLE vm_transitions (
            vm_id TEXT NOT NULL REFERENCES vms(id),
            seq INTEGER NOT NULL,
            from_state INTEGER NULL,
            to_state INTEGER NOT NULL,
            cause INTEGER NOT NULL,
            reason TEXT NULL,
            node_id TEXT NULL,
            previous_node_id TEXT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (vm_id, seq)
        );
        CREATE TABLE vm_effects (
            id TEXT PRIMARY KEY,
            vm_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            effect TEXT NOT NULL,
            status INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            last_error TEXT NULL,
            completed_at INTEGER NULL,
            FOREIGN KEY (vm_id, seq) REFERENCES vm_transitions(vm_id, seq)
        );
        CREATE INDEX vm_effects_due ON vm_effects(status, next_attempt_at);
        CREATE INDEX vm_effects_vm ON vm_effects(vm_id, seq);
        """,
    ];

    private const string VmColumns =
        "id, owner, compute_points, memory_mib, storage_gib, gpus, gpu_model, quality_tier, bandwidth_tier, architecture, state, node_id, version, created_at, updated_at";

    private const string EffectSelect =
        """
        SELECT e.id, e.effect, e.status, e.attempts, e.next_attempt_at, e.last_error,
               t.vm_id, t.seq, t.from_state, t.to_state, t.cause, t.reason, t.node_id, t.previous_node_id, t.at
        FROM vm_effects e JOIN vm_transitions t ON t.vm_id = e.vm_id AND t.seq = e.seq
        """;

    private readonly SqliteDatabase _db;

    /// <summary>Creates the store and applies its migrations.</summary>
    public SqliteVmStore(SqliteDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _db = database;
        _db.Migrate(Component, Migrations);
    }

    /// <inheritdoc />
    public Task<bool> InsertAsync(VmRecord vm, VmTransition creation, IReadOnlyList<string> effects, DateTimeOffset dueAt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(vm);
        ArgumentNullException.ThrowIfNull(creation);
        ArgumentNullException.ThrowIfNull(effects);
        cancellationToken.ThrowIfCancellationRequested();
        using var c = _db.Open();
        using var tx = c.BeginTransaction(deferred: false);
        using (var insert = c.Command($"INSERT OR IGNORE INTO vms ({VmColumns}) VALUES ($id, $owner, $cp, $mem, $sto, $gpus, $gm, $qt, $bt, $arch, $state, $node, $ver, $created, $updated);", tx))
        {
            BindVm(insert, vm);
            if (insert.ExecuteNonQuery() == 0)
            {
                return Task.FromResult(false);
            }
        }

        InsertTransitionAndEffects(c, tx, creation, effects, dueAt);
        tx.Commit();
        return Task.FromResult(true);
    }

    /// <inheritdoc />
    public Task<bool> ApplyTransitionAsync(VmRecord updated, long expectedVersion, VmTransition transition, IReadOnlyList<string> effects, DateTimeOffset dueAt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(updated);
        ArgumentNullException.ThrowIfNull(transition);
        ArgumentNullException.ThrowIfNull(effects);
        cancellationToken.ThrowIfCancellationRequested();
        using var c = _db.Open();
        using var tx = c.BeginTransaction(deferred: false);
        using (var update = c.Command("UPDATE vms SET state = $state, node_id = $node, version = $ver, updated_at = $updated WHERE id = $id AND version = $expected;", tx))
        {
            update.With("$state", (int)updated.State).With("$node", updated.Node?.Value).With("$ver", updated.Version)
                .With("$updated", updated.UpdatedAt.ToUnixMs()).With("$id", updated.Id.ToString()).With("$expected", expectedVersion);
            if (update.ExecuteNonQuery() == 0)
            {
                return Task.FromResult(false);
            }
        }

        InsertTransitionAndEffects(c, tx, transition, effects, dueAt);
        tx.Commit();
        return Task.FromResult(true);
    }

    /// <inheritdoc />
    public Task<VmRecord?> GetAsync(VmId id, CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        using var cmd = c.Command($"SELECT {VmColumns} FROM vms WHERE id = $id;").With("$id", id.ToString());
        using var r = cmd.ExecuteReader();
        return Task.FromResult(r.Read() ? ReadVm(r) : null);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<VmRecord>> ListAsync(VmState? state = null, NodeId? node = null, CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        using var cmd = c.Command($"SELECT {VmColumns} FROM vms WHERE ($state IS NULL OR state = $state) AND ($node IS NULL OR node_id = $node) ORDER BY created_at, id;")
            .With("$state", state is { } s ? (int)s : null).With("$node", node?.Value);
        using var r = cmd.ExecuteReader();
        var list = new List<VmRecord>();
        while (r.Read())
        {
            list.Add(ReadVm(r));
        }

        return Task.FromResult<IReadOnlyList<VmRecord>>(list);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<VmTransition>> GetHistoryAsync(VmId id, CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        using var cmd = c.Command("SELECT vm_id, seq, from_state, to_state, cause, reason, node_id, previous_node_id, at FROM vm_transitions WHERE vm_id = $id ORDER BY seq;")
            .With("$id", id.ToString());
        using var r = cmd.ExecuteReader();
        var list = new List<VmTransition>();
        while (r.Read())
        {
            list.Add(ReadTransition(r, 0));
        }

        return Task.FromResult<IReadOnlyList<VmTransition>>(list);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<VmEffectEntry>> GetDueEffectsAsync(DateTimeOffset now, int max, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        using var c = _db.Open();
        using var cmd = c.Command(EffectSelect + " WHERE e.status = 0 AND e.next_attempt_at <= $now ORDER BY e.next_attempt_at, e.rowid LIMIT $max;")
            .With("$now", now.ToUnixMs()).With("$max", max);
        return Task.FromResult(ReadEffects(cmd));
    }

    /// <inheritdoc />
    public Task<DateTimeOffset?> GetNextDueAsync(CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        using var cmd = c.Command("SELECT MIN(next_attempt_at) FROM vm_effects WHERE status = 0;");
        var value = cmd.ExecuteScalar();
        return Task.FromResult<DateTimeOffset?>(value is long ms ? SqliteCommands.FromUnixMs(ms) : null);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<VmEffectEntry>> GetEffectsAsync(VmId id, CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        using var cmd = c.Command(EffectSelect + " WHERE e.vm_id = $id ORDER BY e.seq, e.rowid;").With("$id", id.ToString());
        return Task.FromResult(ReadEffects(cmd));
    }

    /// <inheritdoc />
    public Task<bool> CompleteEffectAsync(string effectId, int attempts, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        using var cmd = c.Command("UPDATE vm_effects SET status = 1, attempts = $a, completed_at = $at, last_error = NULL WHERE id = $id AND status = 0;")
            .With("$a", attempts).With("$at", at.ToUnixMs()).With("$id", effectId);
        return Task.FromResult(cmd.ExecuteNonQuery() == 1);
    }

    /// <inheritdoc />
    public Task FailEffectAsync(string effectId, int attempts, DateTimeOffset? nextAttemptAt, string error, CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        using var cmd = c.Command(
                "UPDATE vm_effects SET status = $status, attempts = $a, next_attempt_at = COALESCE($next, next_attempt_at), last_error = $err WHERE id = $id AND status = 0;")
            .With("$status", nextAttemptAt is null ? (int)VmEffectStatus.Failed : (int)VmEffectStatus.Pending)
            .With("$a", attempts).With("$next", nextAttemptAt?.ToUnixMs()).With("$err", error).With("$id", effectId);
        cmd.ExecuteNonQuery();
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<bool> RequeueEffectAsync(string effectId, DateTimeOffset dueAt, CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        using var cmd = c.Command("UPDATE vm_effects SET status = 0, attempts = 0, next_attempt_at = $due WHERE id = $id AND status = 2;")
            .With("$due", dueAt.ToUnixMs()).With("$id", effectId);
        return Task.FromResult(cmd.ExecuteNonQuery() == 1);
    }

    private static void InsertTransitionAndEffects(SqliteConnection c, SqliteTransaction tx, VmTransition t, IReadOnlyList<string> effects, DateTimeOffset dueAt)
    {
        using (var insert = c.Command(
                   "INSERT INTO vm_transitions (vm_id, seq, from_state, to_state, cause, reason, node_id, previous_node_id, at) VALUES ($vm, $seq, $from, $to, $cause, $reason, $node, $prev, $at);", tx))
        {
            insert.With("$vm", t.VmId.ToString()).With("$seq", t.Sequence).With("$from", t.From is { } f ? (int)f : null)
                .With("$to", (int)t.To).With("$cause", (int)t.Cause).With("$reason", t.Reason).With("$node", t.Node?.Value)
                .With("$prev", t.PreviousNode?.Value).With("$at", t.At.ToUnixMs());
            insert.ExecuteNonQuery();
        }

        if (effects.Count == 0)
        {
            return;
        }

        using var effect = c.Command(
            "INSERT INTO vm_effects (id, vm_id, seq, effect, status, attempts, next_attempt_at) VALUES ($id, $vm, $seq, $effect, 0, 0, $due);", tx);
        var id = effect.Parameters.Add("$id", SqliteType.Text);
        var name = effect.Parameters.Add("$effect", SqliteType.Text);
        effect.With("$vm", t.VmId.ToString()).With("$seq", t.Sequence).With("$due", dueAt.ToUnixMs());
        effect.Prepare();
        foreach (var e in effects)
        {
            id.Value = VmEffectEntry.MakeId(t.VmId, t.Sequence, e);
            name.Value = e;
            effect.ExecuteNonQuery();
        }
    }

    private static void BindVm(SqliteCommand cmd, VmRecord vm)
    {
        var s = vm.Spec;
        cmd.With("$id", vm.Id.ToString()).With("$owner", s.Owner.ToLowerHex()).With("$cp", s.Resources.ComputePoints)
            .With("$mem", s.Resources.MemoryMiB).With("$sto", s.Resources.StorageGiB).With("$gpus", s.Resources.Gpus)
            .With("$gm", s.Resources.GpuModel).With("$qt", (int)s.QualityTier).With("$bt", (int)s.BandwidthTier)
            .With("$arch", (int)s.Architecture).With("$state", (int)vm.State).With("$node", vm.Node?.Value)
            .With("$ver", vm.Version).With("$created", vm.CreatedAt.ToUnixMs()).With("$updated", vm.UpdatedAt.ToUnixMs());
    }

    private static VmRecord ReadVm(SqliteDataReader r)
    {
        var spec = new VmSpec(
            WalletAddress.Parse(r.GetString(1), "owner"),
            new Resources(r.GetInt32(2), r.GetInt64(3), r.GetInt64(4), r.GetInt32(5), r.GetNullableString(6)),
            (QualityTier)r.GetInt32(7),
            (BandwidthTier)r.GetInt32(8),
            (CpuArchitecture)r.GetInt32(9));
        return new VmRecord(
            VmId.Parse(r.GetString(0)), spec, (VmState)r.GetInt32(10), ReadNode(r, 11), r.GetInt64(12),
            SqliteCommands.FromUnixMs(r.GetInt64(13)), SqliteCommands.FromUnixMs(r.GetInt64(14)));
    }

    private static VmTransition ReadTransition(SqliteDataReader r, int o) => new(
        VmId.Parse(r.GetString(o)),
        r.GetInt64(o + 1),
        r.IsDBNull(o + 2) ? null : (VmState)r.GetInt32(o + 2),
        (VmState)r.GetInt32(o + 3),
        (VmTransitionCause)r.GetInt32(o + 4),
        r.GetNullableString(o + 5),
        ReadNode(r, o + 6),
        ReadNode(r, o + 7),
        SqliteCommands.FromUnixMs(r.GetInt64(o + 8)));

    private static NodeId? ReadNode(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : NodeId.Parse(r.GetString(i));

    private static IReadOnlyList<VmEffectEntry> ReadEffects(SqliteCommand cmd)
    {
        using var r = cmd.ExecuteReader();
        var list = new List<VmEffectEntry>();
        while (r.Read())
        {
            list.Add(new VmEffectEntry(
                r.GetString(0), r.GetString(1), ReadTransition(r, 6), (VmEffectStatus)r.GetInt32(2), r.GetInt32(3),
                SqliteCommands.FromUnixMs(r.GetInt64(4)), r.GetNullableString(5)));
        }

        return list;
    }
}
