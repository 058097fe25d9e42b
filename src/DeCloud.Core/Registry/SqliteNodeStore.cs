using System.Globalization;
using System.Text;
using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;
using Microsoft.Data.Sqlite;

namespace DeCloud.Core.Registry;

/// <summary>
/// <see cref="INodeStore"/> on SQLite: tables <c>nodes</c>, <c>node_status</c>, <c>node_failed_days</c>
/// and <c>node_counter_keys</c>, created by the <c>registry</c> migrations. Status batches are written
/// in one transaction with prepared statements.
/// </summary>
public sealed class SqliteNodeStore : INodeStore
{
    /// <summary>The migration component name.</summary>
    public const string Component = "registry";

    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE nodes (
            id TEXT PRIMARY KEY,
            wallet TEXT NOT NULL,
            cpu_cores INTEGER NOT NULL,
            cpu_model TEXT NOT NULL,
            benchmark_score REAL NOT NULL,
            memory_mib INTEGER NOT NULL,
            storage_gib INTEGER NOT NULL,
            gpus TEXT NOT NULL,
            architecture INTEGER NOT NULL,
            region TEXT NOT NULL,
            tags TEXT NOT NULL,
            description TEXT NULL,
            price_compute_point_hour TEXT NOT NULL,
            price_memory_gib_hour TEXT NOT NULL,
            price_storage_gib_hour TEXT NOT NULL,
            price_gpu_hour TEXT NOT NULL,
            connectivity INTEGER NOT NULL,
            public_endpoint TEXT NULL,
            agent_version TEXT NOT NULL,
            registered_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            vms_hosted INTEGER NOT NULL DEFAULT 0,
            vms_completed INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE node_status (
            node_id TEXT PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
            last_seen_at INTEGER NOT NULL,
            status INTEGER NOT NULL,
            missed_counted INTEGER NOT NULL,
            used_compute_points INTEGER NOT NULL,
            used_memory_mib INTEGER NOT NULL,
            used_storage_gib INTEGER NOT NULL,
            used_gpus INTEGER NOT NULL,
            vms TEXT NOT NULL
        );
        CREATE TABLE node_failed_days (
            node_id TEXT NOT NULL,
            day INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            PRIMARY KEY (node_id, day)
        );
        CREATE INDEX node_failed_days_day ON node_failed_days(day);
        CREATE TABLE node_counter_keys (
            key TEXT PRIMARY KEY,
            node_id TEXT NOT NULL
        );
        """,
    ];

    private readonly SqliteDatabase _db;

    /// <summary>Creates the store and applies its migrations.</summary>
    public SqliteNodeStore(SqliteDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _db = database;
        _db.Migrate(Component, Migrations);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> LoadAllAsync(CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        var days = new Dictionary<string, List<FailedHeartbeats>>(StringComparer.Ordinal);
        using (var cmd = c.Command("SELECT node_id, day, failed FROM node_failed_days ORDER BY node_id, day;"))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                var id = r.GetString(0);
                if (!days.TryGetValue(id, out var list))
                {
                    days[id] = list = [];
                }

                list.Add(new FailedHeartbeats(r.GetInt64(1), r.GetInt32(2)));
            }
        }

        var nodes = new List<StoredNode>();
        using (var cmd = c.Command(
                   """
                   SELECT n.id, n.wallet, n.cpu_cores, n.cpu_model, n.benchmark_score, n.memory_mib, n.storage_gib, n.gpus, n.architecture,
                          n.region, n.tags, n.description, n.price_compute_point_hour, n.price_memory_gib_hour, n.price_storage_gib_hour,
                          n.price_gpu_hour, n.connectivity, n.public_endpoint, n.agent_version, n.registered_at, n.updated_at,
                          n.vms_hosted, n.vms_completed,
                          s.last_seen_at, s.status, s.missed_counted, s.used_compute_points, s.used_memory_mib, s.used_storage_gib, s.used_gpus, s.vms
                   FROM nodes n JOIN node_status s ON s.node_id = n.id ORDER BY n.id;
                   """))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                var id = NodeId.Parse(r.GetString(0));
                var gpus = r.GetString(7);
                var tags = r.GetString(10);
                var registration = new NodeRegistration(
                    id,
                    WalletAddress.Parse(r.GetString(1), "wallet"),
                    new NodeHardware(r.GetInt32(2), r.GetString(3), r.GetDouble(4), r.GetInt64(5), r.GetInt64(6),
                        gpus.Length == 0 ? [] : gpus.Split(',')),
                    (CpuArchitecture)r.GetInt32(8),
                    r.GetString(9),
                    tags.Length == 0 ? [] : tags.Split(','),
                    r.GetNullableString(11),
                    new NodePricing(Dec(r.GetString(12)), Dec(r.GetString(13)), Dec(r.GetString(14)), Dec(r.GetString(15))),
                    (NodeConnectivity)r.GetInt32(16),
                    r.GetNullableString(17),
                    r.GetString(18));
                var status = new NodeStatusUpdate(
                    id, SqliteCommands.FromUnixMs(r.GetInt64(23)), (NodeStatus)r.GetInt32(24), r.GetInt64(25),
                    new Resources(r.GetInt32(26), r.GetInt64(27), r.GetInt64(28), r.GetInt32(29)),
                    DecodeVms(r.GetString(30)), []);
                nodes.Add(new StoredNode(
                    registration, SqliteCommands.FromUnixMs(r.GetInt64(19)), SqliteCommands.FromUnixMs(r.GetInt64(20)), status,
                    days.TryGetValue(id.Value, out var d) ? d : [], r.GetInt64(21), r.GetInt64(22)));
            }
        }

        return Task.FromResult<IReadOnlyList<StoredNode>>(nodes);
    }

    /// <inheritdoc />
    public Task SaveRegistrationAsync(NodeRegistration registration, DateTimeOffset registeredAt, DateTimeOffset updatedAt, NodeStatusUpdate initialStatus, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registration);
        ArgumentNullException.ThrowIfNull(initialStatus);
        cancellationToken.ThrowIfCancellationRequested();
        using var c = _db.Open();
        using var tx = c.BeginTransaction(deferred: false);
        using (var cmd = c.Command(
                   """
                   INSERT INTO nodes (id, wallet, cpu_cores, cpu_model, benchmark_score, memory_mib, storage_gib, gpus, architecture, region, tags,
                                      description, price_compute_point_hour, price_memory_gib_hour, price_storage_gib_hour, price_gpu_hour,
                                      connectivity, public_endpoint, agent_version, registered_at, updated_at)
                   VALUES ($id, $wallet, $cores, $model, $score, $mem, $sto, $gpus, $arch, $region, $tags, $desc, $pcp, $pmem, $psto, $pgpu,
                           $conn, $endpoint, $agent, $registered, $updated)
                   ON CONFLICT(id) DO UPDATE SET wallet = excluded.wallet, cpu_cores = excluded.cpu_cores, cpu_model = excluded.cpu_model,
                       benchmark_score = excluded.benchmark_score, memory_mib = excluded.memory_mib, storage_gib = excluded.storage_gib,
                       gpus = excluded.gpus, architecture = excluded.architecture, region = excluded.region, tags = excluded.tags,
                       description = excluded.description, price_compute_point_hour = excluded.price_compute_point_hour,
                       price_memory_gib_hour = excluded.price_memory_gib_hour, price_storage_gib_hour = excluded.price_storage_gib_hour,
                       price_gpu_hour = excluded.price_gpu_hour, connectivity = excluded.connectivity,
                       public_endpoint = excluded.public_endpoint, agent_version = excluded.agent_version, updated_at = excluded.updated_at;
                   """, tx))
        {
            var h = registration.Hardware;
            var p = registration.Pricing;
            cmd.With("$id", registration.NodeId.Value).With("$wallet", registration.OperatorWallet.ToLowerHex())
                .With("$cores", h.CpuCores).With("$model", h.CpuModel).With("$score", h.BenchmarkScore).With("$mem", h.MemoryMiB)
                .With("$sto", h.StorageGiB).With("$gpus", string.Join(',', h.Gpus ?? [])).With("$arch", (int)registration.Architecture)
                .With("$region", registration.Region).With("$tags", string.Join(',', registration.Tags)).With("$desc", registration.Description)
                .With("$pcp", Str(p.ComputePointHour)).With("$pmem", Str(p.MemoryGiBHour)).With("$psto", Str(p.StorageGiBHour))
                .With("$pgpu", Str(p.GpuHour)).With("$conn", (int)registration.Connectivity).With("$endpoint", registration.PublicEndpoint)
                .With("$agent", registration.AgentVersion).With("$registered", registeredAt.ToUnixMs()).With("$updated", updatedAt.ToUnixMs());
            cmd.ExecuteNonQuery();
        }

        using (var status = c.Command(
                   """
                   INSERT OR IGNORE INTO node_status (node_id, last_seen_at, status, missed_counted, used_compute_points, used_memory_mib, used_storage_gib, used_gpus, vms)
                   VALUES ($id, $seen, $status, $missed, $cp, $mem, $sto, $gpus, $vms);
                   """, tx))
        {
            BindStatus(status, initialStatus);
            status.ExecuteNonQuery();
        }

        tx.Commit();
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task SaveStatusBatchAsync(IReadOnlyList<NodeStatusUpdate> updates, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(updates);
        if (updates.Count == 0)
        {
            return Task.CompletedTask;
        }

        using var c = _db.Open();
        using var tx = c.BeginTransaction(deferred: false);
        using var status = c.Command(
            """
            UPDATE node_status SET last_seen_at = $seen, status = $status, missed_counted = $missed, used_compute_points = $cp,
                used_memory_mib = $mem, used_storage_gib = $sto, used_gpus = $gpus, vms = $vms
            WHERE node_id = $id;
            """, tx);
        var pId = status.Parameters.Add("$id", SqliteType.Text);
        var pSeen = status.Parameters.Add("$seen", SqliteType.Integer);
        var pStatus = status.Parameters.Add("$status", SqliteType.Integer);
        var pMissed = status.Parameters.Add("$missed", SqliteType.Integer);
        var pCp = status.Parameters.Add("$cp", SqliteType.Integer);
        var pMem = status.Parameters.Add("$mem", SqliteType.Integer);
        var pSto = status.Parameters.Add("$sto", SqliteType.Integer);
        var pGpus = status.Parameters.Add("$gpus", SqliteType.Integer);
        var pVms = status.Parameters.Add("$vms", SqliteType.Text);
        status.Prepare();
        SqliteCommand? failed = null;
        try
        {
            foreach (var u in updates)
            {
                pId.Value = u.NodeId.Value;
                pSeen.Value = u.LastSeenAt.ToUnixMs();
                pStatus.Value = (int)u.Status;
                pMissed.Value = u.MissedCounted;
                pCp.Value = u.Used.ComputePoints;
                pMem.Value = u.Used.MemoryMiB;
                pSto.Value = u.Used.StorageGiB;
                pGpus.Value = u.Used.Gpus;
                pVms.Value = EncodeVms(u.Vms);
                if (status.ExecuteNonQuery() == 0 || u.NewlyFailed.Count == 0)
                {
                    continue; // a removed node, or nothing to add to its reputation
                }

                failed ??= c.Command(
                    "INSERT INTO node_failed_days (node_id, day, failed) VALUES ($id, $day, $n) ON CONFLICT(node_id, day) DO UPDATE SET failed = failed + excluded.failed;", tx);
                foreach (var f in u.NewlyFailed)
                {
                    failed.Parameters.Clear();
                    failed.With("$id", u.NodeId.Value).With("$day", f.Day).With("$n", f.Count).ExecuteNonQuery();
                }
            }

            tx.Commit();
        }
        finally
        {
            failed?.Dispose();
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<bool> RemoveAsync(NodeId nodeId, CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        using var tx = c.BeginTransaction(deferred: false);
        using (var days = c.Command("DELETE FROM node_failed_days WHERE node_id = $id;", tx).With("$id", nodeId.Value))
        {
            days.ExecuteNonQuery();
        }

        using (var keys = c.Command("DELETE FROM node_counter_keys WHERE node_id = $id;", tx).With("$id", nodeId.Value))
        {
            keys.ExecuteNonQuery();
        }

        using var node = c.Command("DELETE FROM nodes WHERE id = $id;", tx).With("$id", nodeId.Value);
        var removed = node.ExecuteNonQuery() == 1;
        tx.Commit();
        return Task.FromResult(removed);
    }

    /// <inheritdoc />
    public Task<int> PruneFailedHeartbeatsAsync(long firstKeptDay, CancellationToken cancellationToken = default)
    {
        using var c = _db.Open();
        using var cmd = c.Command("DELETE FROM node_failed_days WHERE day < $day;").With("$day", firstKeptDay);
        return Task.FromResult(cmd.ExecuteNonQuery());
    }

    /// <inheritdoc />
    public Task<bool> IncrementCounterAsync(NodeId nodeId, NodeCounter counter, string idempotencyKey, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(idempotencyKey);
        var column = counter switch
        {
            NodeCounter.VmsHosted => "vms_hosted",
            NodeCounter.VmsCompletedCleanly => "vms_completed",
            _ => throw Validate.Fail("counter", $"'{counter}' is not a node counter."),
        };
        using var c = _db.Open();
        using var tx = c.BeginTransaction(deferred: false);
        using (var exists = c.Command("SELECT COUNT(*) FROM nodes WHERE id = $id;", tx).With("$id", nodeId.Value))
        {
            if ((long)exists.ExecuteScalar()! == 0)
            {
                return Task.FromResult(false);
            }
        }

        using (var key = c.Command("INSERT OR IGNORE INTO node_counter_keys (key, node_id) VALUES ($key, $id);", tx)
                   .With("$key", $"{(int)counter}:{idempotencyKey}").With("$id", nodeId.Value))
        {
            if (key.ExecuteNonQuery() == 0)
            {
                return Task.FromResult(false);
            }
        }

        using (var inc = c.Command($"UPDATE nodes SET {column} = {column} + 1 WHERE id = $id;", tx).With("$id", nodeId.Value))
        {
            inc.ExecuteNonQuery();
        }

        tx.Commit();
        return Task.FromResult(true);
    }

    private static void BindStatus(SqliteCommand cmd, NodeStatusUpdate u) =>
        cmd.With("$id", u.NodeId.Value).With("$seen", u.LastSeenAt.ToUnixMs()).With("$status", (int)u.Status)
            .With("$missed", u.MissedCounted).With("$cp", u.Used.ComputePoints).With("$mem", u.Used.MemoryMiB)
            .With("$sto", u.Used.StorageGiB).With("$gpus", u.Used.Gpus).With("$vms", EncodeVms(u.Vms));

    private static string Str(decimal d) => d.ToString(CultureInfo.InvariantCulture);

    private static decimal Dec(string s) => decimal.Parse(s, NumberStyles.Number, CultureInfo.InvariantCulture);

    internal static string EncodeVms(IReadOnlyList<VmStatusReport> vms)
    {
        if (vms.Count == 0)
        {
            return string.Empty;
        }

        var sb = new StringBuilder(vms.Count * 36);
        foreach (var vm in vms)
        {
            if (sb.Length > 0)
            {
                sb.Append(',');
            }

            sb.Append(vm.VmId.ToString()).Append(':').Append((int)vm.State);
        }

        return sb.ToString();
    }

    internal static IReadOnlyList<VmStatusReport> DecodeVms(string text)
    {
        if (text.Length == 0)
        {
            return [];
        }

        var list = new List<VmStatusReport>();
        foreach (var part in text.Split(','))
        {
            var colon = part.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && VmId.TryParse(part.AsSpan(0, colon), null, out var id) &&
                int.TryParse(part.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var state) &&
                VmTransitionTable.IsDefined((VmState)state))
            {
                list.Add(new VmStatusReport(id, (VmState)state));
            }
        }

        return list;
    }
}
