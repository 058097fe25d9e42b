using System.Net.Http.Headers;
using DeCloud.Cli.Client;
using DeCloud.Cli.Commands;
using DeCloud.Core.Model;
using DeCloud.Orchestrator;
using DeCloud.Orchestrator.Storage;
using DeCloud.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>
/// The reference orchestrator in this process (real Kestrel on loopback, port 0, its own SQLite folder), for billing
/// tests that pass extra settings (a chain, a short billing interval) or look inside its ledger.
/// </summary>
internal sealed class BillingOrchestrator : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly List<HostProcess> _agents = [];

    private BillingOrchestrator(WebApplication app, string dir)
    {
        _app = app;
        Dir = dir;
        var addresses = OrchestratorApplication.Addresses(app);
        Api = addresses.Api;
        Agents = addresses.Agents;
    }

    public string Dir { get; }

    public Uri Api { get; }

    public Uri Agents { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<BillingOrchestrator> StartAsync(params string[] settings)
    {
        var dir = Directory.CreateTempSubdirectory("dcb9-orch-").FullName;
        var app = OrchestratorApplication.Create([
            "--Orchestrator:ApiUrl=http://127.0.0.1:0", "--Orchestrator:AgentUrl=http://127.0.0.1:0",
            "--Orchestrator:DataDirectory=" + Path.Combine(dir, "orchestrator"), "--Orchestrator:HeartbeatInterval=00:00:00.300",
            "--Orchestrator:OfflineAfter=00:00:06", "--Logging:LogLevel:Default=Warning", .. settings]);
        await app.StartAsync().Within(TimeSpan.FromMinutes(1), "the orchestrator to start");
        return new BillingOrchestrator(app, dir);
    }

    /// <summary>Signs in (Sign-In with Ethereum) and returns a client with the session token.</summary>
    public async Task<(OrchestratorClient Client, HttpClient Http, WalletAddress Wallet)> SignInAsync(WalletKey key)
    {
        var session = await UserCommands.SignInAsync(Api, key, CancellationToken.None).Within();
        var http = new HttpClient { BaseAddress = Api };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", session.Token);
        return (new OrchestratorClient(Api, session.Token), http, WalletAddress.Parse(session.Address));
    }

    /// <summary>Registers a node straight in the registry (online, 8 points), as an agent's registration would.</summary>
    public Task<NodeId> AddNodeAsync(WalletAddress op, string machine) =>
        Unit.OrchestratorCoreStores.RegisterAsync(Services.GetRequiredService<OrchestratorStore>(), machine, op);

    /// <summary>Starts an agent process (simulated hypervisor) that dials this orchestrator.</summary>
    public HostProcess StartAgent(string name, WalletKey operatorKey)
    {
        var keyFile = Path.Combine(Dir, name + ".key");
        operatorKey.Save(keyFile);
        var agent = HostProcess.Start("agent", "--orchestrator", Agents.ToString(), "--key-file", keyFile, "--data", Path.Combine(Dir, name),
            "--hypervisor", "simulated", "--machine-id", "dcb9-" + name, "--compute-points", "8", "--behind-nat", "false",
            "--Agent:MemoryMiB=8192", "--Agent:ReconnectDelay=00:00:00.200", "--Agent:MaxReconnectDelay=00:00:01");
        _agents.Add(agent);
        return agent;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var a in _agents)
        {
            await a.DisposeAsync();
        }

        await _app.StopAsync().Within(TimeSpan.FromMinutes(1), "the orchestrator to stop");
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}
