using DeCloud.Core.Sqlite;
using Microsoft.Data.Sqlite;

namespace DeCloud.Core.Tests.Sqlite;

public sealed class SqliteDatabaseTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("decloud-sqlite-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void Migrate_Reopened_AppliesEachVersionOnce()
    {
        var path = Path.Combine(_dir, "db.sqlite");
        var db = new SqliteDatabase(path);
        db.Migrate("demo", ["CREATE TABLE t (x INTEGER);"]);
        Assert.Equal(1, db.SchemaVersion("demo"));

        // Restart: a new instance on the same file, one more migration appended.
        var reopened = new SqliteDatabase(path);
        reopened.Migrate("demo", ["CREATE TABLE t (x INTEGER);", "ALTER TABLE t ADD COLUMN y INTEGER;"]);
        Assert.Equal(2, reopened.SchemaVersion("demo"));
        Assert.Equal(0, reopened.SchemaVersion("other"));

        using var c = reopened.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode;";
        Assert.Equal("wal", cmd.ExecuteScalar());
    }

    [Fact]
    public void Migrate_FailingScript_LeavesVersionUnchanged()
    {
        var db = new SqliteDatabase(Path.Combine(_dir, "db.sqlite"));
        db.Migrate("demo", ["CREATE TABLE t (x INTEGER);"]);
        Assert.Throws<SqliteException>(() => db.Migrate("demo", ["CREATE TABLE t (x INTEGER);", "THIS IS NOT SQL;"]));
        Assert.Equal(1, db.SchemaVersion("demo"));
    }
}
