using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Core.Sqlite;
using DeCloud.Orchestrator.Storage;
using DeCloud.Orchestrator.Vms;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>
/// Opens the orchestrator's store the way the host does: its migrations first, then Core's registry on the same file,
/// with placement subscribed to the registry and rebuilt from it. Disposes the registries it opened.
/// </summary>
internal sealed class OrchestratorCoreStores : IAsyncDisposable
{
    public static readonly WalletAddress Wallet = WalletAddress.Parse("0x52908400098527886E0F7030069857D2E4169EE7");

    private readonly List<NodeRegistry> _registries = [];

    public async Task<OrchestratorStore> OpenAsync(string path, TimeProvider? time = null, NodePlacement? placement = null, NodeRegistryOptions? options = null)
    {
        var db = new SqliteDatabase(path);
        OrchestratorStore.Migrate(db);
        var registry = new NodeRegistry(new SqliteNodeStore(db), options, time);
        _registries.Add(registry);
        if (placement is not null)
        {
            registry.Subscribe(placement.Sync);
        }

        var store = new OrchestratorStore(db, registry, placement);
        await store.InitializeAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return store;
    }

    /// <summary>A public node (8 cores, the given points' worth of benchmark score) registered through the registry.</summary>
    public static async Task<NodeId> RegisterAsync(
        OrchestratorStore store, string machine = "m1", WalletAddress? wallet = null, int points = 8, bool behindNat = false, bool relayCapable = false,
        NodePricing? pricing = null, string region = "default", long memoryMiB = 8192, long storageGiB = 100)
    {
        var op = wallet ?? Wallet;
        var id = NodeId.FromMachine(machine, op);
        var registration = new NodeRegistration(
            id, op, new NodeHardware(8, "AMD EPYC 7443P", points * 1000.0, memoryMiB, storageGiB), CpuArchitecture.X86_64, region, [], null,
            pricing ?? new NodePricing(0.01m, 0.002m, 0.0001m), behindNat ? NodeConnectivity.BehindNat : NodeConnectivity.Public,
            behindNat ? null : "127.0.0.1:22", "1.0.0");
        await store.RegisterNodeAsync(registration, new AgentDetails(machine, relayCapable, relayCapable ? "127.0.0.1:7835" : string.Empty))
            .WaitAsync(TimeSpan.FromSeconds(30));
        return id;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var r in _registries)
        {
            await r.DisposeAsync();
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
    }
}
