using System.Net.Http.Json;
using DeCloud.Cli.Client;
using DeCloud.Cli.Commands;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>An orchestrator process and any number of agent processes in one temp folder, on loopback.</summary>
internal sealed class Cloud : IAsyncDisposable
{
    private readonly List<HostProcess> _agents = [];

    private Cloud(string dir) => Dir = dir;

    public string Dir { get; }

    public HostProcess Orchestrator { get; private set; } = null!;

    public Uri Api { get; private set; } = null!;

    public Uri Agents { get; private set; } = null!;

    public int ApiPort { get; private set; }

    public int AgentPort { get; private set; }

    public static async Task<Cloud> StartAsync()
    {
        var cloud = new Cloud(Directory.CreateTempSubdirectory("dch-e2e-").FullName);
        cloud.ApiPort = HostProcess.FreePort();
        cloud.AgentPort = HostProcess.FreePort();
        await cloud.StartOrchestratorAsync();
        return cloud;
    }

    /// <summary>Like <see cref="StartAsync()"/>, with extra orchestrator arguments (e.g. <c>--Orchestrator:SigningKeyLifetime=...</c>).</summary>
    public static async Task<Cloud> StartWithAsync(params string[] orchestratorArgs)
    {
        var cloud = new Cloud(Directory.CreateTempSubdirectory("dch-e2e-").FullName) { ApiPort = HostProcess.FreePort(), AgentPort = HostProcess.FreePort() };
        cloud.Orchestrator = HostProcess.Start([
            "orchestrator", "--api-url", $"http://127.0.0.1:{cloud.ApiPort}", "--agent-url", $"http://127.0.0.1:{cloud.AgentPort}",
            "--data", Path.Combine(cloud.Dir, "orchestrator"), "--Orchestrator:HeartbeatInterval=00:00:00.300", "--Orchestrator:OfflineAfter=00:00:06",
            .. orchestratorArgs]);
        cloud.Api = new Uri((await cloud.Orchestrator.WaitForLineAsync(@"decloud orchestrator api (\S+)")).Groups[1].Value);
        cloud.Agents = new Uri((await cloud.Orchestrator.WaitForLineAsync(@"decloud orchestrator agents (\S+)")).Groups[1].Value);
        return cloud;
    }

    /// <summary>(Re)starts the orchestrator on the same ports and data folder.</summary>
    public async Task StartOrchestratorAsync()
    {
        Orchestrator = HostProcess.Start("orchestrator",
            "--api-url", $"http://127.0.0.1:{ApiPort}", "--agent-url", $"http://127.0.0.1:{AgentPort}",
            "--data", Path.Combine(Dir, "orchestrator"),
            "--Orchestrator:HeartbeatInterval=00:00:00.300", "--Orchestrator:OfflineAfter=00:00:06");
        Api = new Uri((await Orchestrator.WaitForLineAsync(@"decloud orchestrator api (\S+)")).Groups[1].Value);
        Agents = new Uri((await Orchestrator.WaitForLineAsync(@"decloud orchestrator agents (\S+)")).Groups[1].Value);
    }

    public HostProcess StartAgent(string name, string keyFile, bool behindNat = false, params string[] extra)
    {
        var agent = HostProcess.Start([
            "agent", "--orchestrator", Agents.ToString(), "--key-file", keyFile, "--data", Path.Combine(Dir, name),
            "--hypervisor", "simulated", "--machine-id", "dch-" + name, "--compute-points", "8",
            "--behind-nat", behindNat ? "true" : "false", "--Agent:MemoryMiB=8192", "--Agent:ReconnectDelay=00:00:00.200",
            "--Agent:MaxReconnectDelay=00:00:01", .. extra]);
        _agents.Add(agent);
        return agent;
    }

    public string NewKeyFile(string name)
    {
        var path = Path.Combine(Dir, name + ".key");
        WalletKey.Generate().Save(path);
        return path;
    }

    public async Task<OrchestratorClient> SignInAsync()
    {
        var session = await UserCommands.SignInAsync(Api, WalletKey.Generate(), CancellationToken.None).Within();
        return new OrchestratorClient(Api, session.Token);
    }

    public async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, string what, TimeSpan? timeout = null)
        where T : class
    {
        var deadline = TimeProvider.System.GetTimestamp();
        var bound = timeout ?? TimeSpan.FromSeconds(60);
        while (true)
        {
            if (await probe() is { } v)
            {
                return v;
            }

            if (TimeProvider.System.GetElapsedTime(deadline) > bound)
            {
                throw new TimeoutException($"Timed out after {bound} waiting for {what}.\nOrchestrator output:\n{Orchestrator.Output}");
            }

            await Task.Delay(100);
        }
    }

    public async Task<List<NodeInfo>> NodesAsync()
    {
        using var http = new HttpClient { BaseAddress = Api };
        return (await http.GetFromJsonAsync<List<NodeInfo>>("api/v1/nodes", OrchestratorClient.Json))!;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var a in _agents)
        {
            await a.DisposeAsync();
        }

        await Orchestrator.DisposeAsync();
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
