using System.Globalization;
using DeCloud.Core.Sqlite;
using DeCloud.Protocol.V1;
using Google.Protobuf;

namespace DeCloud.Agent.State;

/// <summary>A VM the agent is responsible for, with the spec it was created from and what it should be doing.</summary>
internal sealed record LocalVm(string Id, CreateVm Spec, bool ShouldRun);

/// <summary>A public port this node forwards.</summary>
internal sealed record LocalPort(string VmId, int PublicPort, int TargetPort, string Protocol, string TargetHost);

/// <summary>
/// The agent's local SQLite state: its VMs (kept across restarts and disconnects; only a delete command
/// removes one), its forwarded ports, every executed command's ack (so a re-sent command is answered,
/// not re-executed), and measured facts such as compute points.
/// </summary>
internal sealed class AgentState
{
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE vms (id TEXT PRIMARY KEY, spec BLOB NOT NULL, should_run INTEGER NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE ports (public_port INTEGER NOT NULL, protocol TEXT NOT NULL, vm_id TEXT NOT NULL, target_port INTEGER NOT NULL,
            target_host TEXT NOT NULL, PRIMARY KEY (public_port, protocol));
        CREATE TABLE executed (command_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, ack BLOB NOT NULL, at INTEGER NOT NULL);
        CREATE TABLE facts (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
    ];

    private readonly SqliteDatabase _db;
    private readonly Lock _write = new();

    public AgentState(SqliteDatabase db)
    {
        _db = db;
        _db.Migrate("agent", Migrations);
    }

    public string? GetFact(string key)
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT value FROM facts WHERE key=$k;";
        cmd.Parameters.AddWithValue("$k", key);
        return cmd.ExecuteScalar() as string;
    }

    public void SetFact(string key, string value)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "INSERT INTO facts (key, value) VALUES ($k, $v) ON CONFLICT(key) DO UPDATE SET value=$v;";
            cmd.Parameters.AddWithValue("$k", key);
            cmd.Parameters.AddWithValue("$v", value);
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>The stored ack of an executed command, or null when the command is new.</summary>
    public CommandAck? FindAck(string commandId)
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT ack FROM executed WHERE command_id=$id;";
        cmd.Parameters.AddWithValue("$id", commandId);
        return cmd.ExecuteScalar() is byte[] b ? CommandAck.Parser.ParseFrom(b) : null;
    }

    /// <summary>Replaces a command's stored ack (a long-running command's final outcome).</summary>
    public void ReplaceAck(CommandAck ack)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE executed SET ack=$ack WHERE command_id=$id;";
            cmd.Parameters.AddWithValue("$id", ack.CommandId);
            cmd.Parameters.AddWithValue("$ack", ack.ToByteArray());
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Stored acks with <paramref name="status"/>.</summary>
    public IReadOnlyList<CommandAck> ListAcks(AckStatus status)
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT ack FROM executed ORDER BY seq;";
        using var r = cmd.ExecuteReader();
        var list = new List<CommandAck>();
        while (r.Read())
        {
            var ack = CommandAck.Parser.ParseFrom((byte[])r[0]);
            if (ack.Status == status)
            {
                list.Add(ack);
            }
        }

        return list;
    }

    /// <summary>The highest executed command sequence (0 when none).</summary>
    public ulong LastExecutedSequence()
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COALESCE(MAX(seq), 0) FROM executed;";
        return Convert.ToUInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    /// <summary>Records a command's outcome together with the VM change it made, in one transaction.</summary>
    public void Complete(Command command, CommandAck ack, Action<Microsoft.Data.Sqlite.SqliteConnection, Microsoft.Data.Sqlite.SqliteTransaction>? change, DateTimeOffset now)
    {
        lock (_write)
        {
            using var c = _db.Open();
            using var tx = c.BeginTransaction();
            change?.Invoke(c, tx);
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT OR REPLACE INTO executed (command_id, seq, ack, at) VALUES ($id, $seq, $ack, $at);";
            cmd.Parameters.AddWithValue("$id", command.CommandId);
            cmd.Parameters.AddWithValue("$seq", (long)command.Sequence);
            cmd.Parameters.AddWithValue("$ack", ack.ToByteArray());
            cmd.Parameters.AddWithValue("$at", now.ToUnixTimeMilliseconds());
            cmd.ExecuteNonQuery();
            tx.Commit();
        }
    }

    public static void UpsertVm(Microsoft.Data.Sqlite.SqliteConnection c, Microsoft.Data.Sqlite.SqliteTransaction tx, CreateVm spec, bool shouldRun, DateTimeOffset now)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT INTO vms (id, spec, should_run, created_at) VALUES ($id, $s, $r, $now) ON CONFLICT(id) DO UPDATE SET spec=$s, should_run=$r;";
        cmd.Parameters.AddWithValue("$id", spec.VmId);
        cmd.Parameters.AddWithValue("$s", spec.ToByteArray());
        cmd.Parameters.AddWithValue("$r", shouldRun ? 1 : 0);
        cmd.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        cmd.ExecuteNonQuery();
    }

    public static void SetShouldRun(Microsoft.Data.Sqlite.SqliteConnection c, Microsoft.Data.Sqlite.SqliteTransaction tx, string vmId, bool shouldRun)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "UPDATE vms SET should_run=$r WHERE id=$id;";
        cmd.Parameters.AddWithValue("$id", vmId);
        cmd.Parameters.AddWithValue("$r", shouldRun ? 1 : 0);
        cmd.ExecuteNonQuery();
    }

    public static void DeleteVm(Microsoft.Data.Sqlite.SqliteConnection c, Microsoft.Data.Sqlite.SqliteTransaction tx, string vmId)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "DELETE FROM ports WHERE vm_id=$id; DELETE FROM vms WHERE id=$id;";
        cmd.Parameters.AddWithValue("$id", vmId);
        cmd.ExecuteNonQuery();
    }

    public static void UpsertPort(Microsoft.Data.Sqlite.SqliteConnection c, Microsoft.Data.Sqlite.SqliteTransaction tx, LocalPort p)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT OR REPLACE INTO ports (public_port, protocol, vm_id, target_port, target_host) VALUES ($pp, $p, $vm, $tp, $th);";
        cmd.Parameters.AddWithValue("$pp", p.PublicPort);
        cmd.Parameters.AddWithValue("$p", p.Protocol);
        cmd.Parameters.AddWithValue("$vm", p.VmId);
        cmd.Parameters.AddWithValue("$tp", p.TargetPort);
        cmd.Parameters.AddWithValue("$th", p.TargetHost);
        cmd.ExecuteNonQuery();
    }

    public static void DeletePort(Microsoft.Data.Sqlite.SqliteConnection c, Microsoft.Data.Sqlite.SqliteTransaction tx, int publicPort, string protocol)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "DELETE FROM ports WHERE public_port=$pp AND protocol=$p;";
        cmd.Parameters.AddWithValue("$pp", publicPort);
        cmd.Parameters.AddWithValue("$p", protocol);
        cmd.ExecuteNonQuery();
    }

    public IReadOnlyList<LocalVm> ListVms()
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT id, spec, should_run FROM vms ORDER BY created_at, id;";
        using var r = cmd.ExecuteReader();
        var list = new List<LocalVm>();
        while (r.Read())
        {
            list.Add(new LocalVm(r.GetString(0), CreateVm.Parser.ParseFrom((byte[])r[1]), r.GetInt64(2) != 0));
        }

        return list;
    }

    public IReadOnlyList<LocalPort> ListPorts()
    {
        using var c = _db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT vm_id, public_port, target_port, protocol, target_host FROM ports ORDER BY public_port;";
        using var r = cmd.ExecuteReader();
        var list = new List<LocalPort>();
        while (r.Read())
        {
            list.Add(new LocalPort(r.GetString(0), r.GetInt32(1), r.GetInt32(2), r.GetString(3), r.GetString(4)));
        }

        return list;
    }
}
