using System.Globalization;
using System.Text.Json;
using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;
using DeCloud.Orchestrator.Vms;
using DeCloud.Protocol.V1;
using Google.Protobuf;
using Microsoft.Data.Sqlite;

namespace DeCloud.Orchestrator.Storage;

/// <summary>
/// The orchestrator's durable state in one SQLite file: nodes, VMs, the per-node command outbox,
/// public ports and sign-in sessions. Every multi-row change runs in one transaction, so a crash
/// never leaves a VM without its command or an ack half applied; on restart everything is read back.
/// </summary>
internal sealed class OrchestratorStore
{
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE nodes (
            id TEXT PRIMARY KEY, operator TEXT NOT NULL, machine_id TEXT NOT NULL, region TEXT NOT NULL,
            tags TEXT NOT NULL, architecture TEXT NOT NULL, behind_nat INTEGER NOT NULL, public_host TEXT NOT NULL,
            relay_capable INTEGER NOT NULL, relay_endpoint TEXT NOT NULL,
            cap_cp INTEGER NOT NULL, cap_mem INTEGER NOT NULL, cap_storage INTEGER NOT NULL, cap_gpus INTEGER NOT NULL, cap_gpu_model TEXT,
            used_cp INTEGER NOT NULL DEFAULT 0, used_mem INTEGER NOT NULL DEFAULT 0, used_storage INTEGER NOT NULL DEFAULT 0,
            online INTEGER NOT NULL, registered_at INTEGER NOT NULL, last_seen INTEGER NOT NULL,
            next_seq INTEGER NOT NULL DEFAULT 1, relay_node_id TEXT);
        CREATE TABLE vms (
            id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, node_id TEXT NOT NULL REFERENCES nodes(id),
            cp INTEGER NOT NULL, mem INTEGER NOT NULL, storage INTEGER NOT NULL, gpus INTEGER NOT NULL,
            quality TEXT NOT NULL, bandwidth TEXT NOT NULL, state TEXT NOT NULL, power TEXT NOT NULL, error TEXT,
            services TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
        CREATE INDEX vms_owner ON vms(owner);
        CREATE INDEX vms_node ON vms(node_id);
        CREATE TABLE commands (
            command_id TEXT PRIMARY KEY, node_id TEXT NOT NULL REFERENCES nodes(id), seq INTEGER NOT NULL,
            kind TEXT NOT NULL, vm_id TEXT, payload BLOB NOT NULL, status TEXT NOT NULL, error TEXT,
            created_at INTEGER NOT NULL, acked_at INTEGER, UNIQUE (node_id, seq));
        CREATE INDEX commands_pending ON commands(node_id, status);
        CREATE TABLE ports (
            public_port INTEGER NOT NULL, protocol TEXT NOT NULL, vm_id TEXT NOT NULL, target_port INTEGER NOT NULL,
            node_id TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (public_port, protocol));
        CREATE TABLE sessions (token TEXT PRIMARY KEY, wallet TEXT NOT NULL, expires_at INTEGER NOT NULL);
        CREATE TABLE nonces (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
        """,
        // The port a relay actually bound for a NAT'd node: it differs from public_port when that one was taken
        // on the relay host (by another process, or by an outgoing connection from the ephemeral range).
        "ALTER TABLE ports ADD COLUMN relay_port INTEGER NULL;",
        // When each node was online: an interval opens when it registers or heartbeats while offline, and closes at its
        // last heartbeat when it is marked offline. Featured nodes and SLA credits read uptime from it.
        """
        CREATE TABLE node_online (node_id TEXT NOT NULL, since INTEGER NOT NULL, until INTEGER NULL);
        CREATE INDEX node_online_node ON node_online(node_id, since);
        """,
    ];

    private readonly SqliteDatabase _db;
    private readonly Lock _write = new();

    // An in-memory mirror of the nodes, kept in step with every write (under _write), so node queries never
    // scan SQLite. Placement state (capacity, online, what live VMs hold) is Core's NodeInventory, fed from here.
    private readonly Dictionary<string, NodeRecord> _nodes = new(StringComparer.Ordinal);
    private readonly NodePlacement? _placement;

    /// <summary>Opens the store; when <paramref name="placement"/> is given, rebuilds it from the stored nodes and live VMs and keeps it in step.</summary>
    public OrchestratorStore(SqliteDatabase db, NodePlacement? placement = null)
    {
        _db = db;
        _db.Migrate("orchestrator", Migrations);
        foreach (var n in LoadNodes(null))
        {
            _nodes[n.Id.Value] = n;
        }

        _placement = placement;
        placement?.Load(_nodes.Values, ListVms(null).Where(v => VmStates.HoldsResources(v.State)));
    }

    // ------------------------------------------------------------------ nodes

    /// <summary>Inserts or updates a node at registration and marks it online.</summary>
    public void UpsertNode(NodeRecord n)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                INSERT INTO nodes (id, operator, machine_id, region, tags, architecture, behind_nat, public_host, relay_capable,
                    relay_endpoint, cap_cp, cap_mem, cap_storage, cap_gpus, cap_gpu_model, online, registered_at, last_seen)
                VALUES ($id, $op, $m, $r, $t, $a, $nat, $ph, $rc, $re, $cp, $mem, $st, $g, $gm, 1, $now, $now)
                ON CONFLICT(id) DO UPDATE SET operator=$op, machine_id=$m, region=$r, tags=$t, architecture=$a, behind_nat=$nat,
                    public_host=$ph, relay_capable=$rc, relay_endpoint=$re, cap_cp=$cp, cap_mem=$mem, cap_storage=$st,
                    cap_gpus=$g, cap_gpu_model=$gm, online=1, last_seen=$now;
                """;
            cmd.Parameters.AddWithValue("$id", n.Id.Value);
            cmd.Parameters.AddWithValue("$op", n.Operator.ToLowerHex());
            cmd.Parameters.AddWithValue("$m", n.MachineId);
            cmd.Parameters.AddWithValue("$r", n.Region);
            cmd.Parameters.AddWithValue("$t", string.Join(',', n.Tags));
            cmd.Parameters.AddWithValue("$a", n.Architecture);
            cmd.Parameters.AddWithValue("$nat", n.BehindNat ? 1 : 0);
            cmd.Parameters.AddWithValue("$ph", n.PublicHost);
            cmd.Parameters.AddWithValue("$rc", n.RelayCapable ? 1 : 0);
            cmd.Parameters.AddWithValue("$re", n.RelayEndpoint);
            cmd.Parameters.AddWithValue("$cp", n.Capacity.ComputePoints);
            cmd.Parameters.AddWithValue("$mem", n.Capacity.MemoryMiB);
            cmd.Parameters.AddWithValue("$st", n.Capacity.StorageGiB);
            cmd.Parameters.AddWithValue("$g", n.Capacity.Gpus);
            cmd.Parameters.AddWithValue("$gm", (object?)n.Capacity.GpuModel ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$now", n.LastSeen.ToUnixTimeMilliseconds());
            cmd.ExecuteNonQuery();
            if (!(_nodes.TryGetValue(n.Id.Value, out var before) && before.Online))
            {
                OpenOnlineInterval(c, null, n.Id, n.LastSeen);
            }

            var stored = LoadNodes(n.Id).Single();
            _nodes[n.Id.Value] = stored;
            _placement?.NodeChanged(stored);
        }
    }

    /// <summary>Records a heartbeat: last seen, resource use, and the power state and readiness of each reported VM.</summary>
    public void RecordHeartbeat(NodeId node, Resources used, IReadOnlyList<VmStatus> vms, DateTimeOffset now)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var tx = c.BeginTransaction();
            using (var cmd = c.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "UPDATE nodes SET last_seen=$now, online=1, used_cp=$cp, used_mem=$mem, used_storage=$st WHERE id=$id;";
                cmd.Parameters.AddWithValue("$id", node.Value);
                cmd.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
                cmd.Parameters.AddWithValue("$cp", used.ComputePoints);
                cmd.Parameters.AddWithValue("$mem", used.MemoryMiB);
                cmd.Parameters.AddWithValue("$st", used.StorageGiB);
                cmd.ExecuteNonQuery();
            }

            if (_nodes.TryGetValue(node.Value, out var was) && !was.Online)
            {
                OpenOnlineInterval(c, tx, node, now);
            }

            foreach (var vm in vms)
            {
                if (!VmId.TryParse(vm.VmId, null, out var id))
                {
                    continue;
                }

                var services = new Dictionary<string, bool>(StringComparer.Ordinal);
                foreach (var s in vm.Services)
                {
                    services[s.Name] = s.Ready;
                }

                using var cmd = c.CreateCommand();
                cmd.Transaction = tx;
                // Only the node that hosts the VM may report on it.
                cmd.CommandText = "UPDATE vms SET power=$p, services=$s, updated_at=$now WHERE id=$id AND node_id=$node;";
                cmd.Parameters.AddWithValue("$id", id.ToString());
                cmd.Parameters.AddWithValue("$node", node.Value);
                cmd.Parameters.AddWithValue("$p", PowerName(vm.State));
                cmd.Parameters.AddWithValue("$s", JsonSerializer.Serialize(services));
                cmd.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
                cmd.ExecuteNonQuery();
            }

            tx.Commit();
            if (_nodes.TryGetValue(node.Value, out var known))
            {
                _nodes[node.Value] = known with { LastSeen = now, Online = true, Used = used };
                _placement?.NodeOnline(node, true);
            }
        }
    }

    /// <summary>Marks nodes not seen since <paramref name="cutoff"/> offline; returns their ids.</summary>
    public IReadOnlyList<NodeId> MarkStaleOffline(DateTimeOffset cutoff)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE nodes SET online=0 WHERE online=1 AND last_seen < $cut RETURNING id;";
            cmd.Parameters.AddWithValue("$cut", cutoff.ToUnixTimeMilliseconds());
            var ids = new List<NodeId>();
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                ids.Add(NodeId.Parse(r.GetString(0)));
            }

            r.Close();
            foreach (var id in ids)
            {
                CloseOnlineIntervals(c, id);
                SetOnline(id.Value, false);
            }

            return ids;
        }
    }

    /// <summary>Marks one node offline (its stream ended).</summary>
    public void MarkOffline(NodeId node)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE nodes SET online=0 WHERE id=$id;";
            cmd.Parameters.AddWithValue("$id", node.Value);
            cmd.ExecuteNonQuery();
            CloseOnlineIntervals(c, node);
            SetOnline(node.Value, false);
        }
    }

    /// <summary>Marks every node offline (at start: no stream is connected yet).</summary>
    public void MarkAllOffline()
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE nodes SET online=0;";
            cmd.ExecuteNonQuery();
            CloseOnlineIntervals(c, null);
            foreach (var id in _nodes.Keys.ToList())
            {
                SetOnline(id, false);
            }
        }
    }

    /// <summary>Records which relay carries a NAT'd node's ports.</summary>
    public void SetRelay(NodeId node, NodeId? relay)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE nodes SET relay_node_id=$r WHERE id=$id;";
            cmd.Parameters.AddWithValue("$id", node.Value);
            cmd.Parameters.AddWithValue("$r", relay is { } r ? r.Value : DBNull.Value);
            cmd.ExecuteNonQuery();
            if (_nodes.TryGetValue(node.Value, out var known))
            {
                _nodes[node.Value] = known with { RelayNodeId = relay?.Value };
            }
        }
    }

    public NodeRecord? GetNode(NodeId id)
    {
        lock (_write)
        {
            return _nodes.GetValueOrDefault(id.Value);
        }
    }

    /// <summary>Every node, ordered by id (from memory).</summary>
    public IReadOnlyList<NodeRecord> ListNodes()
    {
        lock (_write)
        {
            var list = new List<NodeRecord>(_nodes.Values);
            list.Sort((a, b) => string.CompareOrdinal(a.Id.Value, b.Id.Value));
            return list;
        }
    }

    // ------------------------------------------------------------------ VMs and commands

    /// <summary>
    /// Inserts a VM in <see cref="VmStates.Provisioning"/> together with its create command, in one
    /// transaction, and returns the command to dispatch.
    /// </summary>
    public Command CreateVm(VmRecord vm, Func<ulong, Command> makeCommand)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var tx = c.BeginTransaction();
            using (var cmd = c.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = """
                    INSERT INTO vms (id, owner, name, node_id, cp, mem, storage, gpus, quality, bandwidth, state, power, error, services, created_at, updated_at)
                    VALUES ($id, $o, $n, $node, $cp, $mem, $st, $g, $q, $b, $s, $p, NULL, '{}', $now, $now);
                    """;
                cmd.Parameters.AddWithValue("$id", vm.Id.ToString());
                cmd.Parameters.AddWithValue("$o", vm.Owner.ToLowerHex());
                cmd.Parameters.AddWithValue("$n", vm.Name);
                cmd.Parameters.AddWithValue("$node", vm.NodeId.Value);
                cmd.Parameters.AddWithValue("$cp", vm.Resources.ComputePoints);
                cmd.Parameters.AddWithValue("$mem", vm.Resources.MemoryMiB);
                cmd.Parameters.AddWithValue("$st", vm.Resources.StorageGiB);
                cmd.Parameters.AddWithValue("$g", vm.Resources.Gpus);
                cmd.Parameters.AddWithValue("$q", vm.QualityTier.ToString());
                cmd.Parameters.AddWithValue("$b", vm.BandwidthTier.ToString());
                cmd.Parameters.AddWithValue("$s", vm.State);
                cmd.Parameters.AddWithValue("$p", vm.PowerState);
                cmd.Parameters.AddWithValue("$now", vm.CreatedAt.ToUnixTimeMilliseconds());
                cmd.ExecuteNonQuery();
            }

            var command = InsertCommand(c, tx, vm.NodeId, vm.Id, makeCommand, vm.CreatedAt);
            tx.Commit();
            return command;
        }
    }

    /// <summary>
    /// Moves a VM to <paramref name="newState"/> (only from one of <paramref name="allowedFrom"/>) and
    /// queues the command for its node in the same transaction. Returns null when the VM's state did not allow it.
    /// </summary>
    public Command? TransitionWithCommand(VmId vm, NodeId node, string[] allowedFrom, string newState, Func<ulong, Command> makeCommand, DateTimeOffset now)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var tx = c.BeginTransaction();
            if (!Transition(c, tx, vm, allowedFrom, newState, null, now))
            {
                return null;
            }

            var command = InsertCommand(c, tx, node, vm, makeCommand, now);
            tx.Commit();
            return command;
        }
    }

    /// <summary>Queues a command that changes no VM state (ports, bandwidth, backups).</summary>
    public Command EnqueueCommand(NodeId node, VmId? vm, Func<ulong, Command> makeCommand, DateTimeOffset now)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var tx = c.BeginTransaction();
            var command = InsertCommand(c, tx, node, vm, makeCommand, now);
            tx.Commit();
            return command;
        }
    }

    /// <summary>
    /// Applies an acknowledgement once: marks the command, then moves its VM to the state the
    /// outcome implies. A second ack of the same command changes nothing and returns false.
    /// </summary>
    public bool ApplyAck(NodeId node, CommandAck ack, DateTimeOffset now)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var tx = c.BeginTransaction();
            string kind;
            string? vmText;
            string status;
            VmId? freed = null;
            using (var find = c.CreateCommand())
            {
                find.Transaction = tx;
                find.CommandText = "SELECT kind, vm_id, status FROM commands WHERE command_id=$id AND node_id=$node;";
                find.Parameters.AddWithValue("$id", ack.CommandId);
                find.Parameters.AddWithValue("$node", node.Value);
                using var r = find.ExecuteReader();
                if (!r.Read())
                {
                    return false;
                }

                kind = r.GetString(0);
                vmText = r.IsDBNull(1) ? null : r.GetString(1);
                status = r.GetString(2);
            }

            var newStatus = ack.Status switch
            {
                AckStatus.Succeeded => "succeeded",
                AckStatus.Failed => "failed",
                AckStatus.Rejected => "rejected",
                AckStatus.InProgress => "in_progress",
                _ => null,
            };
            if (newStatus is null || status is "succeeded" or "failed" or "rejected" || status == newStatus)
            {
                return false;
            }

            using (var mark = c.CreateCommand())
            {
                mark.Transaction = tx;
                mark.CommandText = "UPDATE commands SET status=$s, error=$e, acked_at=$now WHERE command_id=$id;";
                mark.Parameters.AddWithValue("$s", newStatus);
                mark.Parameters.AddWithValue("$e", string.IsNullOrEmpty(ack.Error) ? DBNull.Value : ack.Error);
                mark.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
                mark.Parameters.AddWithValue("$id", ack.CommandId);
                mark.ExecuteNonQuery();
            }

            if (vmText is not null && VmId.TryParse(vmText, null, out var vm))
            {
                var ok = ack.Status == AckStatus.Succeeded;
                var failed = ack.Status is AckStatus.Failed or AckStatus.Rejected;
                var released = false;
                switch (kind)
                {
                    case nameof(Command.KindOneofCase.CreateVm) when ok:
                        Transition(c, tx, vm, [VmStates.Provisioning], VmStates.Running, null, now);
                        break;
                    case nameof(Command.KindOneofCase.CreateVm) when failed:
                        released = Transition(c, tx, vm, [VmStates.Provisioning], VmStates.Failed, ack.Error, now);
                        break;
                    case nameof(Command.KindOneofCase.StartVm) when ok:
                        Transition(c, tx, vm, [VmStates.Starting], VmStates.Running, null, now);
                        break;
                    case nameof(Command.KindOneofCase.StopVm) when ok:
                        Transition(c, tx, vm, [VmStates.Stopping], VmStates.Stopped, null, now);
                        break;
                    case nameof(Command.KindOneofCase.DeleteVm) when ok:
                        released = Transition(c, tx, vm, [VmStates.Deleting], VmStates.Deleted, null, now);
                        break;
                    case nameof(Command.KindOneofCase.StartVm) or nameof(Command.KindOneofCase.StopVm) or nameof(Command.KindOneofCase.DeleteVm) when failed:
                        SetError(c, tx, vm, ack.Error, now);
                        break;
                    case nameof(Command.KindOneofCase.AllocatePublicPort):
                        SetPortState(c, tx, vm, ack, ok ? "open" : failed ? "failed" : "pending");
                        break;
                    default:
                        break;
                }

                if (released)
                {
                    freed = vm;
                }
            }

            tx.Commit();
            if (freed is { } f)
            {
                _placement?.Release(f);
            }

            return true;
        }
    }

    /// <summary>Commands of a node that have no final ack, in sequence order (re-sent after a reconnect).</summary>
    public IReadOnlyList<Command> PendingCommands(NodeId node)
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT payload FROM commands WHERE node_id=$node AND status IN ('pending','in_progress') ORDER BY seq;";
        cmd.Parameters.AddWithValue("$node", node.Value);
        using var r = cmd.ExecuteReader();
        var list = new List<Command>();
        while (r.Read())
        {
            list.Add(Command.Parser.ParseFrom((byte[])r[0]));
        }

        return list;
    }

    /// <summary>The status and error of a command (for tests and the operator API).</summary>
    public (string Status, string? Error)? CommandStatus(string commandId)
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT status, error FROM commands WHERE command_id=$id;";
        cmd.Parameters.AddWithValue("$id", commandId);
        using var r = cmd.ExecuteReader();
        return r.Read() ? (r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1)) : null;
    }

    public VmRecord? GetVm(VmId id)
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = VmSelect + " WHERE id=$id;";
        cmd.Parameters.AddWithValue("$id", id.ToString());
        using var r = cmd.ExecuteReader();
        return r.Read() ? ReadVm(r) : null;
    }

    public IReadOnlyList<VmRecord> ListVms(WalletAddress? owner)
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = VmSelect + (owner is null ? "" : " WHERE owner=$o") + " ORDER BY created_at, id;";
        if (owner is { } o)
        {
            cmd.Parameters.AddWithValue("$o", o.ToLowerHex());
        }

        using var r = cmd.ExecuteReader();
        var list = new List<VmRecord>();
        while (r.Read())
        {
            list.Add(ReadVm(r));
        }

        return list;
    }

    // ------------------------------------------------------------------ ports

    /// <summary>Reserves a free public port in the range for a VM and queues its allocate command, atomically.</summary>
    public (PortRecord Port, Command Command)? ReservePort(VmId vm, NodeId node, int targetPort, string protocol, int min, int max,
        Func<int, ulong, Command> makeCommand, DateTimeOffset now)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var tx = c.BeginTransaction();
            var used = new HashSet<int>();
            using (var q = c.CreateCommand())
            {
                q.Transaction = tx;
                q.CommandText = "SELECT public_port FROM ports WHERE protocol=$p;";
                q.Parameters.AddWithValue("$p", protocol);
                using var r = q.ExecuteReader();
                while (r.Read())
                {
                    used.Add(r.GetInt32(0));
                }
            }

            var port = -1;
            for (var p = min; p <= max; p++)
            {
                if (!used.Contains(p))
                {
                    port = p;
                    break;
                }
            }

            if (port < 0)
            {
                return null;
            }

            using (var ins = c.CreateCommand())
            {
                ins.Transaction = tx;
                ins.CommandText = "INSERT INTO ports (public_port, protocol, vm_id, target_port, node_id, state) VALUES ($pp, $p, $vm, $tp, $n, 'pending');";
                ins.Parameters.AddWithValue("$pp", port);
                ins.Parameters.AddWithValue("$p", protocol);
                ins.Parameters.AddWithValue("$vm", vm.ToString());
                ins.Parameters.AddWithValue("$tp", targetPort);
                ins.Parameters.AddWithValue("$n", node.Value);
                ins.ExecuteNonQuery();
            }

            var command = InsertCommand(c, tx, node, vm, seq => makeCommand(port, seq), now);
            tx.Commit();
            return (new PortRecord(vm, port, targetPort, protocol, node, "pending"), command);
        }
    }

    public IReadOnlyList<PortRecord> ListPorts(VmId vm)
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT vm_id, public_port, target_port, protocol, node_id, state, relay_port FROM ports WHERE vm_id=$vm ORDER BY public_port;";
        cmd.Parameters.AddWithValue("$vm", vm.ToString());
        using var r = cmd.ExecuteReader();
        var list = new List<PortRecord>();
        while (r.Read())
        {
            list.Add(new PortRecord(VmId.Parse(r.GetString(0)), r.GetInt32(1), r.GetInt32(2), r.GetString(3), NodeId.Parse(r.GetString(4)), r.GetString(5))
            {
                RelayPort = r.IsDBNull(6) ? null : r.GetInt32(6),
            });
        }

        return list;
    }

    // ------------------------------------------------------------------ sign-in

    // Sign-in nonces live in Core's siwe_nonces table (SqliteSiweNonceStore); the nonces table of
    // migration 1 is no longer written.

    public void AddSession(string tokenHash, WalletAddress wallet, DateTimeOffset expires)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "INSERT INTO sessions (token, wallet, expires_at) VALUES ($t, $w, $e);";
            cmd.Parameters.AddWithValue("$t", tokenHash);
            cmd.Parameters.AddWithValue("$w", wallet.ToLowerHex());
            cmd.Parameters.AddWithValue("$e", expires.ToUnixTimeMilliseconds());
            cmd.ExecuteNonQuery();
        }
    }

    public WalletAddress? FindSession(string tokenHash, DateTimeOffset now)
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT wallet FROM sessions WHERE token=$t AND expires_at >= $now;";
        cmd.Parameters.AddWithValue("$t", tokenHash);
        cmd.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        return cmd.ExecuteScalar() is string w ? WalletAddress.Parse(w) : null;
    }

    // ------------------------------------------------------------------ helpers

    private const string NodeSelect = """
        SELECT id, operator, machine_id, region, tags, architecture, behind_nat, public_host, relay_capable, relay_endpoint,
               cap_cp, cap_mem, cap_storage, cap_gpus, cap_gpu_model, used_cp, used_mem, used_storage, online, registered_at,
               last_seen, relay_node_id FROM nodes
        """;

    private const string VmSelect = """
        SELECT id, owner, name, node_id, cp, mem, storage, gpus, quality, bandwidth, state, power, error, services, created_at, updated_at FROM vms
        """;

    /// <summary>
    /// The fraction of <paramref name="from"/>..<paramref name="to"/> (from no earlier than its registration) that
    /// <paramref name="node"/> was online, from its recorded online intervals; null for an unknown node or an empty span.
    /// </summary>
    public decimal? GetUptime(NodeId node, DateTimeOffset from, DateTimeOffset to)
    {
        using var c = _db.Open();
        long start;
        using (var q = c.CreateCommand())
        {
            q.CommandText = "SELECT registered_at FROM nodes WHERE id=$id;";
            q.Parameters.AddWithValue("$id", node.Value);
            if (q.ExecuteScalar() is not long registered)
            {
                return null;
            }

            start = Math.Max(registered, from.ToUnixTimeMilliseconds());
        }

        var end = to.ToUnixTimeMilliseconds();
        if (end <= start)
        {
            return null;
        }

        using var cmd = c.CreateCommand();
        // An open interval (online now) counts up to the end of the span.
        cmd.CommandText = """
            SELECT COALESCE(SUM(MAX(0, MIN(COALESCE(until, $end), $end) - MAX(since, $start))), 0)
            FROM node_online WHERE node_id=$id AND since < $end AND (until IS NULL OR until > $start);
            """;
        cmd.Parameters.AddWithValue("$id", node.Value);
        cmd.Parameters.AddWithValue("$start", start);
        cmd.Parameters.AddWithValue("$end", end);
        var online = Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
        return Math.Clamp((decimal)online / (end - start), 0m, 1m);
    }

    private static void OpenOnlineInterval(SqliteConnection c, SqliteTransaction? tx, NodeId node, DateTimeOffset at)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT INTO node_online (node_id, since, until) SELECT $id, $at, NULL WHERE NOT EXISTS (SELECT 1 FROM node_online WHERE node_id=$id AND until IS NULL);";
        cmd.Parameters.AddWithValue("$id", node.Value);
        cmd.Parameters.AddWithValue("$at", at.ToUnixTimeMilliseconds());
        cmd.ExecuteNonQuery();
    }

    /// <summary>Ends the open interval of <paramref name="node"/> (or of every node) at its last heartbeat.</summary>
    private static void CloseOnlineIntervals(SqliteConnection c, NodeId? node)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            UPDATE node_online SET until = MAX(since, COALESCE((SELECT last_seen FROM nodes WHERE nodes.id = node_online.node_id), since))
            WHERE until IS NULL
            """ + (node is null ? ";" : " AND node_id=$id;");
        if (node is { } n)
        {
            cmd.Parameters.AddWithValue("$id", n.Value);
        }

        cmd.ExecuteNonQuery();
    }

    private void SetOnline(string id, bool online)
    {
        if (_nodes.TryGetValue(id, out var n))
        {
            _nodes[id] = n with { Online = online };
            _placement?.NodeOnline(n.Id, online);
        }
    }

    private List<NodeRecord> LoadNodes(NodeId? only)
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = NodeSelect + (only is null ? ";" : " WHERE id=$id;");
        if (only is { } id)
        {
            cmd.Parameters.AddWithValue("$id", id.Value);
        }

        using var r = cmd.ExecuteReader();
        var list = new List<NodeRecord>();
        while (r.Read())
        {
            list.Add(ReadNode(r));
        }

        return list;
    }

    private static NodeRecord ReadNode(SqliteDataReader r) => new(
        NodeId.Parse(r.GetString(0)),
        WalletAddress.Parse(r.GetString(1)),
        r.GetString(2),
        r.GetString(3),
        r.GetString(4).Split(',', StringSplitOptions.RemoveEmptyEntries),
        r.GetString(5),
        r.GetInt64(6) != 0,
        r.GetString(7),
        r.GetInt64(8) != 0,
        r.GetString(9),
        new Resources(r.GetInt32(10), r.GetInt64(11), r.GetInt64(12), r.GetInt32(13), r.IsDBNull(14) ? null : r.GetString(14)),
        new Resources(r.GetInt32(15), r.GetInt64(16), r.GetInt64(17)),
        r.GetInt64(18) != 0,
        DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(19)),
        DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(20)),
        r.IsDBNull(21) ? null : r.GetString(21));

    private static VmRecord ReadVm(SqliteDataReader r) => new(
        VmId.Parse(r.GetString(0)),
        WalletAddress.Parse(r.GetString(1)),
        r.GetString(2),
        NodeId.Parse(r.GetString(3)),
        new Resources(r.GetInt32(4), r.GetInt64(5), r.GetInt64(6), r.GetInt32(7)),
        Enum.Parse<QualityTier>(r.GetString(8)),
        Enum.Parse<BandwidthTier>(r.GetString(9)),
        r.GetString(10),
        r.GetString(11),
        r.IsDBNull(12) ? null : r.GetString(12),
        JsonSerializer.Deserialize<Dictionary<string, bool>>(r.GetString(13)) ?? [],
        DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(14)),
        DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(15)));

    private static Command InsertCommand(SqliteConnection c, SqliteTransaction tx, NodeId node, VmId? vm, Func<ulong, Command> make, DateTimeOffset now)
    {
        ulong seq;
        using (var next = c.CreateCommand())
        {
            next.Transaction = tx;
            next.CommandText = "UPDATE nodes SET next_seq = next_seq + 1 WHERE id=$n RETURNING next_seq - 1;";
            next.Parameters.AddWithValue("$n", node.Value);
            seq = Convert.ToUInt64(next.ExecuteScalar() ?? throw new InvalidOperationException($"Node {node} is not registered."), CultureInfo.InvariantCulture);
        }

        var command = make(seq);
        using var ins = c.CreateCommand();
        ins.Transaction = tx;
        ins.CommandText = """
            INSERT INTO commands (command_id, node_id, seq, kind, vm_id, payload, status, created_at)
            VALUES ($id, $n, $seq, $k, $vm, $p, 'pending', $now);
            """;
        ins.Parameters.AddWithValue("$id", command.CommandId);
        ins.Parameters.AddWithValue("$n", node.Value);
        ins.Parameters.AddWithValue("$seq", (long)seq);
        ins.Parameters.AddWithValue("$k", command.KindCase.ToString());
        ins.Parameters.AddWithValue("$vm", vm is { } v ? v.ToString() : DBNull.Value);
        ins.Parameters.AddWithValue("$p", command.ToByteArray());
        ins.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        ins.ExecuteNonQuery();
        return command;
    }

    private static bool Transition(SqliteConnection c, SqliteTransaction tx, VmId vm, string[] from, string to, string? error, DateTimeOffset now)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        var names = new string[from.Length];
        for (var i = 0; i < from.Length; i++)
        {
            names[i] = "$f" + i.ToString(CultureInfo.InvariantCulture);
            cmd.Parameters.AddWithValue(names[i], from[i]);
        }

        cmd.CommandText = $"UPDATE vms SET state=$to, error=$e, updated_at=$now WHERE id=$id AND state IN ({string.Join(',', names)});";
        cmd.Parameters.AddWithValue("$to", to);
        cmd.Parameters.AddWithValue("$e", (object?)error ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        cmd.Parameters.AddWithValue("$id", vm.ToString());
        return cmd.ExecuteNonQuery() == 1;
    }

    private static void SetError(SqliteConnection c, SqliteTransaction tx, VmId vm, string error, DateTimeOffset now)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "UPDATE vms SET error=$e, updated_at=$now WHERE id=$id;";
        cmd.Parameters.AddWithValue("$e", error);
        cmd.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        cmd.Parameters.AddWithValue("$id", vm.ToString());
        cmd.ExecuteNonQuery();
    }

    private static void SetPortState(SqliteConnection c, SqliteTransaction tx, VmId vm, CommandAck ack, string state)
    {
        if (!ack.Result.TryGetValue("public_port", out var portText) || !int.TryParse(portText, CultureInfo.InvariantCulture, out var port))
        {
            return;
        }

        // A relay that found the asked-for port taken binds another one and the agent reports it; anything
        // that is not a port number is ignored (the row keeps no relay port) rather than stored.
        int? relayPort = ack.Result.TryGetValue("relay_public_port", out var relayText)
            && int.TryParse(relayText, NumberStyles.None, CultureInfo.InvariantCulture, out var rp) && rp is >= 1 and <= 65535 ? rp : null;
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "UPDATE ports SET state=$s, relay_port=COALESCE($rp, relay_port) WHERE vm_id=$vm AND public_port=$p;";
        cmd.Parameters.AddWithValue("$s", state);
        cmd.Parameters.AddWithValue("$rp", (object?)relayPort ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$vm", vm.ToString());
        cmd.Parameters.AddWithValue("$p", port);
        cmd.ExecuteNonQuery();
    }

    private static string PowerName(VmPowerState s) => s switch
    {
        VmPowerState.Running => "running",
        VmPowerState.Stopped => "stopped",
        VmPowerState.Paused => "paused",
        VmPowerState.Crashed => "crashed",
        VmPowerState.Missing => "missing",
        _ => "unknown",
    };
}
