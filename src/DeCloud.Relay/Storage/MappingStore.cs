using System.Globalization;
using Microsoft.Data.Sqlite;

namespace DeCloud.Relay.Storage;

/// <summary>A mapping as stored on the relay: who owns it, its public port, and where it leads.</summary>
internal sealed record StoredMapping(
    string NodeId, string Name, RelayProtocol Protocol, int PublicPort, string TargetHost, int TargetPort,
    bool ProxyProtocol, long BandwidthLimit, DateTimeOffset UpdatedAt);

/// <summary>
/// Durable mappings in SQLite (WAL, one statement per change, so a crash never leaves a half-written
/// row). Without a path it keeps an in-memory database: same code, nothing survives a restart.
/// </summary>
internal sealed class MappingStore : IDisposable
{
    private const int SchemaVersion = 1;
    private readonly SqliteConnection _connection;
    private readonly Lock _lock = new();

    public MappingStore(string? path)
    {
        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = path ?? ":memory:",
            Mode = path is null ? SqliteOpenMode.Memory : SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        };
        _connection = new SqliteConnection(builder.ToString());
        _connection.Open();
        Execute("PRAGMA journal_mode=WAL;");
        Execute("PRAGMA synchronous=FULL;");
        using var version = _connection.CreateCommand();
        version.CommandText = "PRAGMA user_version;";
        var current = Convert.ToInt32(version.ExecuteScalar(), CultureInfo.InvariantCulture);
        if (current > SchemaVersion)
        {
            throw new RelayException($"The relay database '{path}' has schema version {current}, newer than this build's {SchemaVersion}; upgrade DeCloud.Relay.");
        }

        Execute("""
            CREATE TABLE IF NOT EXISTS dcr_mappings (
                node_id TEXT NOT NULL,
                name TEXT NOT NULL,
                protocol INTEGER NOT NULL,
                public_port INTEGER NOT NULL,
                target_host TEXT NOT NULL,
                target_port INTEGER NOT NULL,
                proxy_protocol INTEGER NOT NULL,
                bandwidth_limit INTEGER NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (node_id, name));
            PRAGMA user_version = 1;
            """);
    }

    /// <summary>Every stored mapping. Rows that do not parse are returned in <paramref name="invalid"/> for removal.</summary>
    public IReadOnlyList<StoredMapping> LoadAll(out IReadOnlyList<(string NodeId, string Name, string Problem)> invalid)
    {
        var result = new List<StoredMapping>();
        var bad = new List<(string, string, string)>();
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT node_id, name, protocol, public_port, target_host, target_port, proxy_protocol, bandwidth_limit, updated_at FROM dcr_mappings ORDER BY updated_at;";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var nodeId = reader.GetString(0);
                var name = reader.GetString(1);
                var protocol = reader.GetInt64(2);
                var port = reader.GetInt64(3);
                var targetPort = reader.GetInt64(5);
                if (protocol is < 1 or > 3 || port is < 1 or > 65535 || targetPort is < 1 or > 65535)
                {
                    bad.Add((nodeId, name, $"protocol {protocol}, public port {port}, target port {targetPort}"));
                    continue;
                }

                _ = DateTimeOffset.TryParse(reader.GetString(8), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var updated);
                result.Add(new StoredMapping(nodeId, name, (RelayProtocol)protocol, (int)port, reader.GetString(4), (int)targetPort,
                    reader.GetInt64(6) != 0, reader.GetInt64(7), updated));
            }
        }

        invalid = bad;
        return result;
    }

    /// <summary>Inserts or replaces a mapping in one statement.</summary>
    public void Upsert(StoredMapping mapping)
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = """
                INSERT INTO dcr_mappings (node_id, name, protocol, public_port, target_host, target_port, proxy_protocol, bandwidth_limit, updated_at)
                VALUES ($node, $name, $protocol, $port, $host, $targetPort, $proxy, $limit, $updated)
                ON CONFLICT (node_id, name) DO UPDATE SET protocol = excluded.protocol, public_port = excluded.public_port,
                    target_host = excluded.target_host, target_port = excluded.target_port, proxy_protocol = excluded.proxy_protocol,
                    bandwidth_limit = excluded.bandwidth_limit, updated_at = excluded.updated_at;
                """;
            command.Parameters.AddWithValue("$node", mapping.NodeId);
            command.Parameters.AddWithValue("$name", mapping.Name);
            command.Parameters.AddWithValue("$protocol", (int)mapping.Protocol);
            command.Parameters.AddWithValue("$port", mapping.PublicPort);
            command.Parameters.AddWithValue("$host", mapping.TargetHost);
            command.Parameters.AddWithValue("$targetPort", mapping.TargetPort);
            command.Parameters.AddWithValue("$proxy", mapping.ProxyProtocol ? 1 : 0);
            command.Parameters.AddWithValue("$limit", mapping.BandwidthLimit);
            command.Parameters.AddWithValue("$updated", mapping.UpdatedAt.ToString("O", CultureInfo.InvariantCulture));
            command.ExecuteNonQuery();
        }
    }

    /// <summary>Deletes a mapping; returns false when there was none.</summary>
    public bool Delete(string nodeId, string name)
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "DELETE FROM dcr_mappings WHERE node_id = $node AND name = $name;";
            command.Parameters.AddWithValue("$node", nodeId);
            command.Parameters.AddWithValue("$name", name);
            return command.ExecuteNonQuery() > 0;
        }
    }

    public void Dispose() => _connection.Dispose();

    private void Execute(string sql)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
