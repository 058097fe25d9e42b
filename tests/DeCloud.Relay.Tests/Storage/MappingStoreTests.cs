using DeCloud.Relay.Storage;
using Microsoft.Data.Sqlite;

namespace DeCloud.Relay.Tests.Storage;

public sealed class MappingStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dcr-store-").FullName;

    private string DbPath => Path.Combine(_dir, "relay.db");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static StoredMapping Mapping(string node, string name, int port) =>
        new(node, name, RelayProtocol.Tcp, port, "10.0.0.2", 22, false, 0, DateTimeOffset.UnixEpoch);

    [Fact]
    public void Upsert_ThenReopen_MappingSurvives()
    {
        using (var store = new MappingStore(DbPath))
        {
            store.Upsert(Mapping("n1", "ssh", 40001));
            store.Upsert(Mapping("n1", "ssh", 40002));
            store.Upsert(Mapping("n2", "web", 40003));
        }

        using var reopened = new MappingStore(DbPath);
        var all = reopened.LoadAll(out var invalid);
        Assert.Empty(invalid);
        Assert.Equal(2, all.Count);
        Assert.Equal(40002, all.Single(m => m.NodeId == "n1").PublicPort);
    }

    [Fact]
    public void Delete_Missing_ReturnsFalse()
    {
        using var store = new MappingStore(DbPath);
        store.Upsert(Mapping("n1", "ssh", 40001));
        Assert.True(store.Delete("n1", "ssh"));
        Assert.False(store.Delete("n1", "ssh"));
        Assert.Empty(store.LoadAll(out _));
    }

    [Fact]
    public void LoadAll_CorruptRow_ReportedAsInvalidOthersKept()
    {
        using (var store = new MappingStore(DbPath))
        {
            store.Upsert(Mapping("n1", "ok", 40001));
            store.Upsert(Mapping("n1", "bad", 40002));
        }

        using (var raw = new SqliteConnection($"Data Source={DbPath}"))
        {
            raw.Open();
            using var command = raw.CreateCommand();
            command.CommandText = "UPDATE dcr_mappings SET protocol = 99, public_port = 70000 WHERE name = 'bad';";
            command.ExecuteNonQuery();
        }

        using var reopened = new MappingStore(DbPath);
        var all = reopened.LoadAll(out var invalid);
        Assert.Equal("ok", Assert.Single(all).Name);
        Assert.Equal("bad", Assert.Single(invalid).Name);
    }

    [Fact]
    public void Constructor_NewerSchema_ThrowsWithUpgradeAdvice()
    {
        using (var raw = new SqliteConnection($"Data Source={DbPath}"))
        {
            raw.Open();
            using var command = raw.CreateCommand();
            command.CommandText = "PRAGMA user_version = 7;";
            command.ExecuteNonQuery();
        }

        var ex = Assert.Throws<RelayException>(() => new MappingStore(DbPath));
        Assert.Contains("upgrade", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InMemory_WithoutPath_Works()
    {
        using var store = new MappingStore(null);
        store.Upsert(Mapping("n", "m", 40000));
        Assert.Single(store.LoadAll(out _));
    }
}
