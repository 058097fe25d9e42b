using DeCloud.Core.Sqlite;

namespace DeCloud.Core.Tests.Security;

/// <summary>A SQLite database file in a fresh temporary folder, deleted on dispose.</summary>
internal sealed class SqliteTestDatabase : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("decloud-security-").FullName;

    public SqliteTestDatabase() => Database = new SqliteDatabase(Path.Combine(_dir, "security.db"));

    public SqliteDatabase Database { get; }

    public string FilePath => Database.Path;

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}
