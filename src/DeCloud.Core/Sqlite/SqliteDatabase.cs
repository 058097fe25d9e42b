using Microsoft.Data.Sqlite;

namespace DeCloud.Core.Sqlite;

/// <summary>
/// One SQLite database file shared by Core's stores: opens connections in WAL mode with a busy
/// timeout and foreign keys on, and applies each component's versioned migrations once.
/// </summary>
public sealed class SqliteDatabase
{
    private readonly string _connectionString;

    /// <summary>Creates (if needed) and opens the database at <paramref name="path"/>.</summary>
    public SqliteDatabase(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Path = System.IO.Path.GetFullPath(path);
        var dir = System.IO.Path.GetDirectoryName(Path);
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();

        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode=WAL;";
        cmd.ExecuteNonQuery();
    }

    /// <summary>The full path of the database file.</summary>
    public string Path { get; }

    /// <summary>Opens a new connection (WAL, synchronous=NORMAL, foreign keys, 30 s busy timeout).</summary>
    public SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=30000;";
        cmd.ExecuteNonQuery();
        return c;
    }

    /// <summary>
    /// Applies the migrations of <paramref name="component"/> that have not run yet, each in its own
    /// transaction together with its version row: migration <c>i</c> (1-based) runs exactly once.
    /// </summary>
    /// <param name="component">A stable component name, e.g. <c>nodes</c>, <c>lifecycle</c>.</param>
    /// <param name="migrations">SQL scripts in order; never edit or reorder a shipped one, only append.</param>
    public void Migrate(string component, IReadOnlyList<string> migrations)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(component);
        ArgumentNullException.ThrowIfNull(migrations);
        using var c = Open();
        using (var create = c.CreateCommand())
        {
            create.CommandText =
                "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (component, version));";
            create.ExecuteNonQuery();
        }

        for (var i = 0; i < migrations.Count; i++)
        {
            var version = i + 1;
            using var tx = c.BeginTransaction(deferred: false);
            using (var check = c.CreateCommand())
            {
                check.Transaction = tx;
                check.CommandText = "SELECT COUNT(*) FROM schema_migrations WHERE component = $c AND version = $v;";
                check.Parameters.AddWithValue("$c", component);
                check.Parameters.AddWithValue("$v", version);
                if (Convert.ToInt64(check.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) > 0)
                {
                    continue;
                }
            }

            using (var run = c.CreateCommand())
            {
                run.Transaction = tx;
                run.CommandText = migrations[i];
                run.ExecuteNonQuery();
            }

            using (var mark = c.CreateCommand())
            {
                mark.Transaction = tx;
                mark.CommandText = "INSERT INTO schema_migrations (component, version) VALUES ($c, $v);";
                mark.Parameters.AddWithValue("$c", component);
                mark.Parameters.AddWithValue("$v", version);
                mark.ExecuteNonQuery();
            }

            tx.Commit();
        }
    }

    /// <summary>The highest applied migration version of <paramref name="component"/> (0 when none).</summary>
    public int SchemaVersion(string component)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = $c;";
        cmd.Parameters.AddWithValue("$c", component);
        try
        {
            return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (SqliteException)
        {
            return 0;
        }
    }
}
