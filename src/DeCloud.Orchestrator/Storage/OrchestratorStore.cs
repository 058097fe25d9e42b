using System.Globalization;
using System.Text.Json;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Core.Sqlite;
using DeCloud.Orchestrator.Vms;
using DeCloud.Protocol.V1;
using Google.Protobuf;
using Microsoft.Data.Sqlite;
using NodeRecord = DeCloud.Orchestrator.Storage.NodeRecord;
using VmState = DeCloud.Core.Lifecycle.VmState;

namespace DeCloud.Orchestrator.Storage;

/// <summary>
/// The orchestrator's durable state in one SQLite file, next to Core's registry tables: nodes (read from Core's
/// <see cref="NodeRegistry"/>, with the agent details it does not hold), VMs, the per-node command outbox,
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
        // Nodes live in Core's registry (its nodes/node_status tables, same file): what it does not hold about an agent
        // (machine id, relay role, assigned relay, command sequence) moves to node_agents; the VM rows become vm_details
        // (Core's lifecycle owns the name vms); commands are rebuilt to reference node_agents. Online intervals and the
        // unused nonces table go: uptime is the registry's reputation, nonces are Core's siwe_nonces.
        """
        CREATE TABLE node_agents (
            node_id TEXT PRIMARY KEY, machine_id TEXT NOT NULL, relay_capable INTEGER NOT NULL, relay_endpoint TEXT NOT NULL,
            relay_node_id TEXT NULL, next_seq INTEGER NOT NULL DEFAULT 1);
        INSERT INTO node_agents (node_id, machine_id, relay_capable, relay_endpoint, relay_node_id, next_seq)
            SELECT id, machine_id, relay_capable, relay_endpoint, relay_node_id, next_seq FROM nodes;
        CREATE TABLE vm_details (
            id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, node_id TEXT NOT NULL,
            cp INTEGER NOT NULL, mem INTEGER NOT NULL, storage INTEGER NOT NULL, gpus INTEGER NOT NULL,
            quality TEXT NOT NULL, bandwidth TEXT NOT NULL, state TEXT NOT NULL, power TEXT NOT NULL, error TEXT,
            services TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
        INSERT INTO vm_details SELECT id, owner, name, node_id, cp, mem, storage, gpus, quality, bandwidth, state, power, error,
            services, created_at, updated_at FROM vms;
        CREATE TABLE agent_commands (
            command_id TEXT PRIMARY KEY, node_id TEXT NOT NULL REFERENCES node_agents(node_id), seq INTEGER NOT NULL,
            kind TEXT NOT NULL, vm_id TEXT, payload BLOB NOT NULL, status TEXT NOT NULL, error TEXT,
            created_at INTEGER NOT NULL, acked_at INTEGER, UNIQUE (node_id, seq));
        INSERT INTO agent_commands SELECT command_id, node_id, seq, kind, vm_id, payload, status, error, created_at, acked_at FROM commands;
        DROP TABLE commands;
        DROP TABLE vms;
        DROP TABLE node_online;
        DROP TABLE nodes;
        DROP TABLE nonces;
        CREATE INDEX vm_details_owner ON vm_details(owner);
        CREATE INDEX vm_details_node ON vm_details(node_id);
        CREATE INDEX agent_commands_pending ON agent_commands(node_id, status);
        """,
    ];

    private readonly SqliteDatabase _db;
    private readonly NodeRegistry _registry;
    private readonly Lock _write = new();

    // What the registry does not hold about each agent (machine id, relay role, assigned relay), read once and kept in
    // step with every write (under _write). Everything else about a node is read from the registry.
    private readonly Dictionary<string, AgentRow> _agents = new(StringComparer.Ordinal);
    private readonly NodePlacement? _placement;

    /// <summary>
    /// Opens the store over <paramref name="db"/> (applying the orchestrator's migrations before Core's stores create theirs)
    /// with nodes in <paramref name="registry"/>; <see cref="InitializeAsync"/> loads the registry and rebuilds <paramref name="placement"/>.
    /// </summary>
    public OrchestratorStore(SqliteDatabase db, NodeRegistry registry, NodePlacement? placement = null)
    {
        _db = db;
        _registry = registry;
        Migrate(db);
        using (var c = _db.Open())
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "SELECT node_id, machine_id, relay_capable, relay_endpoint, relay_node_id FROM node_agents;";
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                _agents[r.GetString(0)] = new AgentRow(r.GetString(1), r.GetInt64(2) != 0, r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4));
            }
        }

        _placement = placement;
    }

    /// <summary>Runs a trivial query (readiness check); throws <see cref="SqliteException"/> when the file is unavailable.</summary>
    public void Ping()
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT 1;";
        cmd.ExecuteScalar();
    }

    /// <summary>The node registry the store reads nodes from.</summary>
    public NodeRegistry Registry => _registry;

    /// <summary>The orchestrator's migration scripts in order (tests replay a prefix to build an older database).</summary>
    internal static IReadOnlyList<string> MigrationScripts => Migrations;

    /// <summary>Applies the orchestrator's migrations (idempotent); they must run before Core's stores migrate the same file.</summary>
    public static void Migrate(SqliteDatabase db) => db.Migrate("orchestrator", Migrations);

    /// <summary>Loads the registry, then rebuilds placement from its nodes and the VMs that still hold resources.</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken = default)
    {
        await _registry.InitializeAsync(cancellationToken).ConfigureAwait(false);
        _placement?.Load(_registry.Snapshot(), ListVms(null).Where(v => VmStates.HoldsResources(v.State)));
    }

    // ------------------------------------------------------------------ nodes

    /// <summary>
    /// Registers (or re-registers) a node in the registry and records its agent details; returns the node as the
    /// orchestrator sees it. A registration the registry refuses throws <see cref="DeCloudValidationException"/> and stores nothing.
    /// </summary>
    public async Task<NodeRecord> RegisterNodeAsync(NodeRegistration registration, AgentDetails agent, CancellationToken cancellationToken = default)
    {
        var normalized = registration.Normalize();
        lock (_write)
        {
            // Written first so commands can be queued as soon as the registry shows the node; a registration the
            // registry then refuses leaves this row unused until the agent registers correctly.
            using var c = _db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                INSERT INTO node_agents (node_id, machine_id, relay_capable, relay_endpoint) VALUES ($id, $m, $rc, $re)
                ON CONFLICT(node_id) DO UPDATE SET machine_id=$m, relay_capable=$rc, relay_endpoint=$re;
                """;
            cmd.Parameters.AddWithValue("$id", normalized.NodeId.Value);
            cmd.Parameters.AddWithValue("$m", agent.MachineId);
            cmd.Parameters.AddWithValue("$rc", agent.RelayCapable ? 1 : 0);
            cmd.Parameters.AddWithValue("$re", agent.RelayEndpoint);
            cmd.ExecuteNonQuery();
            _agents[normalized.NodeId.Value] = new AgentRow(agent.MachineId, agent.RelayCapable, agent.RelayEndpoint,
                _agents.GetValueOrDefault(normalized.NodeId.Value)?.RelayNodeId);
        }

        var registered = await _registry.RegisterAsync(normalized, cancellationToken).ConfigureAwait(false);
        return Compose(registered);
    }

    /// <summary>
    /// Records a heartbeat: resource use and VM states in the registry (which brings an offline node back online), and
    /// the power state and readiness of each reported VM in its details, only for VMs the node hosts.
    /// </summary>
    public async Task RecordHeartbeatAsync(NodeId node, Resources used, IReadOnlyList<VmStatus> vms, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        var reports = new List<VmStatusReport>(vms.Count);
        HashSet<VmId>? seen = vms.Count > 1 ? new HashSet<VmId>(vms.Count) : null;
        foreach (var vm in vms)
        {
            if (VmId.TryParse(vm.VmId, null, out var id) && ReportedState(vm.State) is { } state && (seen?.Add(id) ?? true))
            {
                reports.Add(new VmStatusReport(id, state));
            }
        }

        await _registry.RecordHeartbeatAsync(new NodeHeartbeat(node, used, reports), cancellationToken).ConfigureAwait(false);
        if (vms.Count == 0)
        {
            return;
        }

        lock (_write)
        {
            using var c = _db.Open();
            using var tx = c.BeginTransaction();
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            // Only the node that hosts the VM may report on it.
            cmd.CommandText = "UPDATE vm_details SET power=$p, services=$s, updated_at=$now WHERE id=$id AND node_id=$node;";
            var pId = cmd.Parameters.Add("$id", SqliteType.Text);
            var pPower = cmd.Parameters.Add("$p", SqliteType.Text);
            var pServices = cmd.Parameters.Add("$s", SqliteType.Text);
            cmd.Parameters.AddWithValue("$node", node.Value);
            cmd.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
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

                pId.Value = id.ToString();
                pPower.Value = PowerName(vm.State);
                pServices.Value = JsonSerializer.Serialize(services);
                cmd.ExecuteNonQuery();
            }

            tx.Commit();
        }
    }

    /// <summary>Sets the prices the registry holds for a node (search, featured, placement by price); false for an unknown node.</summary>
    public async Task<bool> UpdatePricingAsync(NodeId node, NodePricing pricing, CancellationToken cancellationToken = default)
    {
        if (_registry.Find(node) is not { } current)
        {
            return false;
        }

        await _registry.RegisterAsync(current.Registration with { Pricing = pricing }, cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>Records which relay carries a NAT'd node's ports.</summary>
    public void SetRelay(NodeId node, NodeId? relay)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE node_agents SET relay_node_id=$r WHERE node_id=$id;";
            cmd.Parameters.AddWithValue("$id", node.Value);
            cmd.Parameters.AddWithValue("$r", relay is { } r ? r.Value : DBNull.Value);
            cmd.ExecuteNonQuery();
            if (_agents.TryGetValue(node.Value, out var known))
            {
                _agents[node.Value] = known with { RelayNodeId = relay?.Value };
            }
        }
    }

    /// <summary>The node as the orchestrator sees it (registry record and agent details), or null.</summary>
    public NodeRecord? GetNode(NodeId id) => _registry.Find(id) is { } r ? Compose(r) : null;

    /// <summary>Every registered node, ordered by id.</summary>
    public IReadOnlyList<NodeRecord> ListNodes()
    {
        var snapshot = _registry.Snapshot();
        var list = new List<NodeRecord>(snapshot.Count);
        foreach (var r in snapshot)
        {
            list.Add(Compose(r));
        }

        return list;
    }

    /// <summary>Composes the orchestrator's view of a registry record with its agent details.</summary>
    public NodeRecord Compose(Core.Registry.NodeRecord r)
    {
        AgentRow? agent;
        lock (_write)
        {
            agent = _agents.GetValueOrDefault(r.Id.Value);
        }

        var reg = r.Registration;
        return new NodeRecord(
            r.Id, reg.OperatorWallet, agent?.MachineId ?? string.Empty, reg.Region, [.. reg.Tags], reg.Architecture.ToName(),
            reg.Connectivity == NodeConnectivity.BehindNat, HostOf(reg.PublicEndpoint), agent?.RelayCapable ?? false, agent?.RelayEndpoint ?? string.Empty,
            r.Capacity, r.Used, r.IsOnline, r.RegisteredAt, r.LastSeenAt, agent?.RelayNodeId)
        {
            Registry = r,
        };
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
                    INSERT INTO vm_details (id, owner, name, node_id, cp, mem, storage, gpus, quality, bandwidth, state, power, error, services, created_at, updated_at)
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
    public bool ApplyAck(NodeId node, CommandAck ack, DateTimeOffset now) => ApplyAck(node, ack, now, out _);

    /// <summary>As <see cref="ApplyAck(NodeId, CommandAck, DateTimeOffset)"/>; <paramref name="change"/> is the VM state change it stored, if any.</summary>
    public bool ApplyAck(NodeId node, CommandAck ack, DateTimeOffset now, out VmStateChange? change)
    {
        change = null;
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
                find.CommandText = "SELECT kind, vm_id, status FROM agent_commands WHERE command_id=$id AND node_id=$node;";
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
                mark.CommandText = "UPDATE agent_commands SET status=$s, error=$e, acked_at=$now WHERE command_id=$id;";
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
                        if (Transition(c, tx, vm, [VmStates.Provisioning], VmStates.Running, null, now))
                        {
                            change = new VmStateChange(vm, node, VmStates.Running);
                        }

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
                        change = released ? new VmStateChange(vm, node, VmStates.Deleted) : null;
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
        cmd.CommandText = "SELECT payload FROM agent_commands WHERE node_id=$node AND status IN ('pending','in_progress') ORDER BY seq;";
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
        cmd.CommandText = "SELECT status, error FROM agent_commands WHERE command_id=$id;";
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

    private const string VmSelect = """
        SELECT id, owner, name, node_id, cp, mem, storage, gpus, quality, bandwidth, state, power, error, services, created_at, updated_at FROM vm_details
        """;

    /// <summary>
    /// The node's uptime from the registry's reputation (its rolling window of failed heartbeats, from registration on);
    /// null for an unknown node.
    /// </summary>
    public decimal? GetUptime(NodeId node) => _registry.Find(node) is { } r ? Math.Clamp((decimal)r.Uptime, 0m, 1m) : null;

    private static string HostOf(string? endpoint)
    {
        if (string.IsNullOrEmpty(endpoint))
        {
            return string.Empty;
        }

        var colon = endpoint.LastIndexOf(':');
        var host = colon > 0 ? endpoint[..colon] : endpoint;
        return host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
    }

    /// <summary>A power state as the lifecycle state the registry records for it; null for states it does not track.</summary>
    private static VmState? ReportedState(VmPowerState s) => s switch
    {
        VmPowerState.Running => VmState.Running,
        VmPowerState.Stopped or VmPowerState.Paused => VmState.Stopped,
        VmPowerState.Crashed => VmState.Failed,
        _ => null,
    };

    private sealed record AgentRow(string MachineId, bool RelayCapable, string RelayEndpoint, string? RelayNodeId);

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
            next.CommandText = "UPDATE node_agents SET next_seq = next_seq + 1 WHERE node_id=$n RETURNING next_seq - 1;";
            next.Parameters.AddWithValue("$n", node.Value);
            seq = Convert.ToUInt64(next.ExecuteScalar() ?? throw new InvalidOperationException($"Node {node} is not registered."), CultureInfo.InvariantCulture);
        }

        var command = make(seq);
        using var ins = c.CreateCommand();
        ins.Transaction = tx;
        ins.CommandText = """
            INSERT INTO agent_commands (command_id, node_id, seq, kind, vm_id, payload, status, created_at)
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

        cmd.CommandText = $"UPDATE vm_details SET state=$to, error=$e, updated_at=$now WHERE id=$id AND state IN ({string.Join(',', names)});";
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
        cmd.CommandText = "UPDATE vm_details SET error=$e, updated_at=$now WHERE id=$id;";
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
