using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DeCloud.Cli.Client;
using DeCloud.Cli.Commands;
using DeCloud.Core.Model;
using DeCloud.Orchestrator;
using DeCloud.Orchestrator.Storage;
using DeCloud.Orchestrator.Vms;
using DeCloud.Protocol.V1;
using DeCloud.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>VM placement through Core's scheduler, driven over the HTTP API of an in-process orchestrator.</summary>
public sealed class PlacementTests : IAsyncLifetime
{
    private static readonly WalletAddress Operator = WalletAddress.Parse("0x52908400098527886E0F7030069857D2E4169EE7");
    private readonly string _dir = Directory.CreateTempSubdirectory("dch-place-").FullName;
    private WebApplication _app = null!;
    private HttpClient _http = null!;

    public async ValueTask InitializeAsync()
    {
        _app = OrchestratorApplication.Create(
        [
            "--Orchestrator:ApiUrl=http://127.0.0.1:0", "--Orchestrator:AgentUrl=http://127.0.0.1:0",
            "--Orchestrator:DataDirectory=" + _dir, "--Logging:LogLevel:Default=Warning",
        ]);
        await _app.StartAsync().Within();
        var api = OrchestratorApplication.Addresses(_app).Api;
        var session = await UserCommands.SignInAsync(api, WalletKey.Generate(), CancellationToken.None).Within();
        _http = new HttpClient { BaseAddress = api };
        _http.DefaultRequestHeaders.Authorization = new("Bearer", session.Token);
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _app.StopAsync().Within();
        await _app.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task CreateVm_NothingFits_409ProblemWithSchedulerExplanation()
    {
        await RegisterNodeAsync("small", new Resources(8, 8192, 100));
        await RegisterNodeAsync("tiny", new Resources(4, 4096, 100));

        using var r = await _http.PostAsJsonAsync("api/v1/vms", new { name = "big", computePoints = 4, memoryMiB = 16384, storageGiB = 10 }).Within();

        Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        var p = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(409, p.GetProperty("status").GetInt32());
        Assert.Equal(2, p.GetProperty("inventorySize").GetInt32());
        var rejections = p.GetProperty("rejections").EnumerateArray().ToList();
        Assert.Equal(2, rejections.Sum(x => x.GetProperty("nodes").GetInt32()));
        Assert.Contains(rejections, x => x.GetProperty("filter").GetString()!.Contains("memory", StringComparison.OrdinalIgnoreCase));
        var nearest = p.GetProperty("nearMisses").EnumerateArray().First();
        Assert.Contains("memory", nearest.GetProperty("filter").GetString()!, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(8192, nearest.GetProperty("shortfall").GetInt64());
        Assert.False(string.IsNullOrEmpty(p.GetProperty("detail").GetString()));
        Assert.Empty(_app.Services.GetRequiredService<OrchestratorStore>().ListVms(null));
    }

    [Fact]
    public async Task CreateVm_TargetNodeTooSmall_RefusedWithThatNodesReason()
    {
        var small = await RegisterNodeAsync("small", new Resources(8, 8192, 100));
        await RegisterNodeAsync("large", new Resources(64, 65536, 1000));

        using var r = await _http.PostAsJsonAsync("api/v1/vms", new { name = "pinned", computePoints = 2, memoryMiB = 16384, storageGiB = 10, nodeId = small.Value }).Within();

        Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        var p = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("Target node unavailable", p.GetProperty("title").GetString());
        Assert.Contains("memory", p.GetProperty("detail").GetString()!, StringComparison.OrdinalIgnoreCase);

        // Another node would have fitted: auto placement finds it.
        var auto = await _http.PostAsJsonAsync("api/v1/vms", new { name = "auto", computePoints = 2, memoryMiB = 16384, storageGiB = 10 }).Within();
        Assert.Equal(HttpStatusCode.Created, auto.StatusCode);
    }

    [Fact]
    public async Task CreateVm_TargetNodeUnknown_409NamingTheNode()
    {
        await RegisterNodeAsync("small", new Resources(8, 8192, 100));
        var unknown = NodeId.FromMachine("nowhere", Operator);

        using var r = await _http.PostAsJsonAsync("api/v1/vms", new { computePoints = 1, memoryMiB = 256, storageGiB = 1, nodeId = unknown.Value }).Within();

        Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        Assert.Contains(unknown.Value, await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeleteVm_Acked_ReleasesCapacityForALaterCreate()
    {
        var node = await RegisterNodeAsync("only", new Resources(8, 8192, 100));
        var full = new { name = "full", computePoints = 8, memoryMiB = 8192, storageGiB = 100, qualityTier = "Dedicated" };
        using var first = await _http.PostAsJsonAsync("api/v1/vms", full).Within();
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var vmId = JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        using (var refused = await _http.PostAsJsonAsync("api/v1/vms", full).Within())
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        }

        using (var delete = await _http.DeleteAsync("api/v1/vms/" + vmId).Within())
        {
            Assert.Equal(HttpStatusCode.Accepted, delete.StatusCode);
        }

        // Until the node confirms the delete, the VM still holds its room.
        using (var early = await _http.PostAsJsonAsync("api/v1/vms", full).Within())
        {
            Assert.Equal(HttpStatusCode.Conflict, early.StatusCode);
        }

        var store = _app.Services.GetRequiredService<OrchestratorStore>();
        var deleteCommand = store.PendingCommands(node).Single(c => c.KindCase == Command.KindOneofCase.DeleteVm);
        Assert.True(store.ApplyAck(node, new CommandAck { CommandId = deleteCommand.CommandId, Sequence = deleteCommand.Sequence, Status = AckStatus.Succeeded }, DateTimeOffset.UtcNow));

        using var again = await _http.PostAsJsonAsync("api/v1/vms", full).Within();
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        var usage = _app.Services.GetRequiredService<NodePlacement>().Inventory.GetUsage(node);
        Assert.Equal(usage.Capacity, usage.Allocated);
        Assert.Equal(default, usage.Held);
    }

    private Task<NodeId> RegisterNodeAsync(string machine, Resources capacity) =>
        OrchestratorCoreStores.RegisterAsync(_app.Services.GetRequiredService<OrchestratorStore>(), machine, Operator, capacity.ComputePoints,
            memoryMiB: capacity.MemoryMiB, storageGiB: capacity.StorageGiB);
}
