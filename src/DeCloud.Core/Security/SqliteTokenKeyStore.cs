using DeCloud.Core.Sqlite;

namespace DeCloud.Core.Security;

/// <summary>
/// The key ring in the shared SQLite database (tables <c>token_keys</c> and <c>token_key_ring</c>,
/// migration component <c>security</c>). The private keys are stored as they are: protect the
/// database file like any other secret (the reference orchestrator keeps its data folder 0700).
/// </summary>
public sealed class SqliteTokenKeyStore : ITokenKeyStore
{
    private readonly SqliteDatabase _database;

    /// <summary>Creates the store and applies the <c>security</c> migrations.</summary>
    public SqliteTokenKeyStore(SqliteDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
        SecuritySchema.Apply(database);
    }

    /// <inheritdoc />
    public StoredTokenKeyRing? Load()
    {
        using var c = _database.Open();
        using var tx = c.BeginTransaction();
        long version;
        using (var v = c.Command("SELECT version FROM token_key_ring WHERE id = 1;", tx))
        {
            if (v.ExecuteScalar() is not long stored)
            {
                return null;
            }

            version = stored;
        }

        var keys = new List<StoredTokenKey>();
        using (var cmd = c.Command("SELECT kid, private_key, created_at_ms, retires_at_ms, is_current FROM token_keys ORDER BY created_at_ms, kid;", tx))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                var retires = r.GetNullableInt64(3);
                keys.Add(new StoredTokenKey(r.GetString(0), (byte[])r.GetValue(1), SqliteCommands.FromUnixMs(r.GetInt64(2)),
                    retires is { } ms ? SqliteCommands.FromUnixMs(ms) : null, r.GetInt64(4) == 1));
            }
        }

        return new StoredTokenKeyRing(version, keys);
    }

    /// <inheritdoc />
    public void Save(StoredTokenKeyRing ring)
    {
        ArgumentNullException.ThrowIfNull(ring);
        using var c = _database.Open();
        using var tx = c.BeginTransaction();
        using (var clear = c.Command("DELETE FROM token_keys;", tx))
        {
            clear.ExecuteNonQuery();
        }

        foreach (var k in ring.Keys)
        {
            using var insert = c.Command(
                "INSERT INTO token_keys (kid, private_key, created_at_ms, retires_at_ms, is_current) VALUES ($kid, $key, $created, $retires, $current);", tx)
                .With("$kid", k.KeyId).With("$key", k.PrivateKey.ToArray()).With("$created", k.CreatedAt.ToUnixMs())
                .With("$retires", k.RetiresAt?.ToUnixMs()).With("$current", k.IsCurrent ? 1 : 0);
            insert.ExecuteNonQuery();
        }

        using (var version = c.Command(
            "INSERT INTO token_key_ring (id, version) VALUES (1, $v) ON CONFLICT (id) DO UPDATE SET version = excluded.version;", tx)
            .With("$v", ring.Version))
        {
            version.ExecuteNonQuery();
        }

        tx.Commit();
    }
}
