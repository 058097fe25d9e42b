using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Core.Sqlite;
using Microsoft.Data.Sqlite;

namespace DeCloud.Benchmarks.Heartbeats;

/// <summary>A registry on a fresh SQLite file with N registered nodes, shared by the quick area and the suite.</summary>
internal sealed class HeartbeatBench : IAsyncDisposable
{
    private static readonly WalletAddress Wallet = WalletAddress.Parse("0x52908400098527886e0f7030069857d2e4169ee7");
    private readonly string _dir;

    private HeartbeatBench(string dir, SqliteNodeStore store, NodeRegistry registry, NodeId[] nodes)
    {
        _dir = dir;
        Store = store;
        Registry = registry;
        Nodes = nodes;
    }

    public SqliteNodeStore Store { get; }

    public NodeRegistry Registry { get; }

    public NodeId[] Nodes { get; }

    public static async Task<HeartbeatBench> CreateAsync(int nodes, int batchSize = 2048)
    {
        var dir = Directory.CreateTempSubdirectory("decloud-bench-heartbeats-").FullName;
        var store = new SqliteNodeStore(new SqliteDatabase(Path.Combine(dir, "bench.db")));
        var ids = new NodeId[nodes];
        var now = DateTimeOffset.UtcNow;
        var registrations = new List<(NodeRegistration, DateTimeOffset, DateTimeOffset, NodeStatusUpdate)>(nodes);
        for (var i = 0; i < nodes; i++)
        {
            ids[i] = NodeId.FromMachine($"bench-machine-{i}", Wallet);
            var registration = new NodeRegistration(
                ids[i], Wallet, new NodeHardware(16, "bench cpu", 16000, 65536, 1000), CpuArchitecture.X86_64, "eu-west", ["ssd"],
                null, new NodePricing(0.01m, 0.002m, 0.0001m), NodeConnectivity.BehindNat, null, "1.0.0").Normalize();
            registrations.Add((registration, now, now, new NodeStatusUpdate(ids[i], now, NodeStatus.Online, 0, default, [], [])));
        }

        // Bulk import in one transaction; the registry loads the nodes like after a restart.
        store.SaveRegistrations(registrations);
        var registry = new NodeRegistry(store, new NodeRegistryOptions { HeartbeatBatchSize = batchSize });
        await registry.InitializeAsync();
        if ((await registry.GetAllAsync()).Count != nodes)
        {
            throw new InvalidOperationException("The bulk import did not register every node.");
        }

        return new HeartbeatBench(dir, store, registry, ids);
    }

    public static NodeHeartbeat Beat(NodeId node, int i) => new(node, new Resources(1 + (i % 8), 4096, 100));

    /// <summary>The naive baseline: the same status row, one transaction per heartbeat, straight to the store.</summary>
    public Task NaiveAsync(NodeId node, int i) =>
        Store.SaveStatusBatchAsync([new NodeStatusUpdate(node, DateTimeOffset.UtcNow, NodeStatus.Online, 0, Beat(node, i).Used, [], [])]);

    public async ValueTask DisposeAsync()
    {
        await Registry.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}
