using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DeCloud.Cli.Client;
using DeCloud.Core.Model;
using DeCloud.Protocol;
using DeCloud.Protocol.V1;
using DeCloud.Testing;
using Grpc.Core;
using Grpc.Net.Client;
using Nethereum.Signer;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>The orchestrator and agents as separate processes on loopback, driven through the HTTP API and gRPC.</summary>
public sealed class ControlPlaneEndToEndTests
{
    [Fact]
    public async Task Registration_AgentProcess_OnlineWithHeartbeats()
    {
        await using var cloud = await Cloud.StartAsync();
        cloud.StartAgent("a1", cloud.NewKeyFile("a1"));

        var node = await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.Online), "the agent to register");
        Assert.Equal(8, node.ComputePoints);
        Assert.Equal(8192, node.MemoryMiB);
        Assert.False(node.BehindNat);

        // Heartbeats keep moving last-seen forward.
        var later = await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.LastSeen > node.LastSeen.AddMilliseconds(500)), "heartbeats");
        Assert.True(later.Online);

        using var http = new HttpClient { BaseAddress = cloud.Api };
        var metrics = await http.GetStringAsync("metrics").Within();
        Assert.Contains("decloud_orchestrator_heartbeats", metrics, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("healthz/ready").Within()).StatusCode);
        var openApi = await http.GetStringAsync("openapi/v1.json").Within();
        Assert.Contains("/api/v1/vms", openApi, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreateVm_ThroughApi_AgentAcksAndVmRunsThenDeletes()
    {
        await using var cloud = await Cloud.StartAsync();
        cloud.StartAgent("a1", cloud.NewKeyFile("a1"));
        cloud.StartAgent("a2", cloud.NewKeyFile("a2"));
        var nodes = await cloud.EventuallyAsync(async () => { var n = await cloud.NodesAsync(); return n.Count(x => x.Online) == 2 ? n : null; }, "two agents");
        using var client = await cloud.SignInAsync();

        var auto = await client.CreateVmAsync(new { name = "auto", computePoints = 2, memoryMiB = 512, storageGiB = 5 }, default).Within();
        var pinned = await client.CreateVmAsync(new { name = "pinned", computePoints = 2, memoryMiB = 512, storageGiB = 5, nodeId = nodes[1].Id }, default).Within();
        Assert.Equal("Provisioning", auto.State);
        Assert.Equal(nodes[1].Id, pinned.NodeId);

        foreach (var vm in new[] { auto, pinned })
        {
            var running = await cloud.EventuallyAsync(async () =>
            {
                var v = await client.GetVmAsync(vm.Id, default);
                return v.State == "Running" && v.PowerState == "running" ? v : null;
            }, $"VM {vm.Name} to run");
            Assert.True(running.Services!["vm"]);
        }

        var list = await client.ListVmsAsync(default).Within();
        Assert.Equal(2, list.Count);

        await client.DeleteVmAsync(auto.Id, default).Within();
        await cloud.EventuallyAsync(async () => (await client.GetVmAsync(auto.Id, default)) is { State: "Deleted" } v ? v : null, "the delete ack");
    }

    [Fact]
    public async Task AgentKilled_MarkedOfflineThenReconnects_KeepsItsVms()
    {
        await using var cloud = await Cloud.StartAsync();
        var key = cloud.NewKeyFile("a1");
        var agent = cloud.StartAgent("a1", key);
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.Online), "the agent to register");
        using var client = await cloud.SignInAsync();
        var vm = await client.CreateVmAsync(new { name = "keep", computePoints = 1, memoryMiB = 256, storageGiB = 1 }, default).Within();
        await cloud.EventuallyAsync(async () => (await client.GetVmAsync(vm.Id, default)) is { State: "Running" } v ? v : null, "the VM to run");

        await agent.KillAsync();
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => !n.Online), "the node to go offline");
        Assert.Equal("Running", (await client.GetVmAsync(vm.Id, default).Within()).State);

        // Same key, machine id and data folder: the same node comes back and restores its VM from local state.
        var again = cloud.StartAgent("a1", key);
        await again.WaitForLineAsync(@"Reconciled 1 VMs from local state \(1 recreated");
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.Online), "the node to come back");
        var back = await cloud.EventuallyAsync(async () => (await client.GetVmAsync(vm.Id, default)) is { PowerState: "running" } v ? v : null, "the VM reported running again");
        Assert.Equal("Running", back.State);
        Assert.Single(await cloud.NodesAsync());
    }

    [Fact]
    public async Task OrchestratorRestarted_StateRecoveredAndAgentReconnects()
    {
        await using var cloud = await Cloud.StartAsync();
        cloud.StartAgent("a1", cloud.NewKeyFile("a1"));
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.Online), "the agent to register");
        using var client = await cloud.SignInAsync();
        var vm = await client.CreateVmAsync(new { name = "durable", computePoints = 1, memoryMiB = 256, storageGiB = 1 }, default).Within();
        await cloud.EventuallyAsync(async () => (await client.GetVmAsync(vm.Id, default)) is { State: "Running" } v ? v : null, "the VM to run");

        await cloud.Orchestrator.KillAsync();
        await cloud.StartOrchestratorAsync();

        // The session, the VM and the node survive in SQLite; the agent dials back in by itself.
        Assert.Equal("Running", (await client.GetVmAsync(vm.Id, default).Within()).State);
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.Online), "the agent to reconnect");
        var second = await client.CreateVmAsync(new { name = "after", computePoints = 1, memoryMiB = 256, storageGiB = 1 }, default).Within();
        await cloud.EventuallyAsync(async () => (await client.GetVmAsync(second.Id, default)) is { State: "Running" } v ? v : null, "a VM created after the restart");
    }

    [Fact]
    public async Task Registration_BadSignatureOrGarbage_RejectedOthersUnaffected()
    {
        await using var cloud = await Cloud.StartAsync();
        cloud.StartAgent("good", cloud.NewKeyFile("good"));
        await cloud.EventuallyAsync(async () => (await cloud.NodesAsync()).SingleOrDefault(n => n.Online), "the good agent");

        using var channel = GrpcChannel.ForAddress(cloud.Agents);
        var grpc = new AgentControl.AgentControlClient(channel);

        // Signed by a different key than the wallet it claims.
        var owner = EthECKey.GenerateKey();
        var impostor = EthECKey.GenerateKey();
        var wallet = WalletAddress.Parse(owner.GetPublicAddress());
        var register = new Register
        {
            NodeId = NodeId.FromMachine("dch-forged", wallet).Value,
            OperatorWallet = wallet.ToString(),
            MachineId = "dch-forged",
            IssuedAtUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            Nonce = Guid.NewGuid().ToString("N"),
            Capacity = new Capacity { ComputePoints = 4, MemoryMib = 1024, StorageGib = 10 },
            CpuCores = 2,
            CpuModel = "dch test cpu",
            BenchmarkScore = 4000,
            PublicEndpoint = "127.0.0.1:22",
        };
        register.Signature = new EthereumMessageSigner().EncodeUTF8AndSign(RegistrationText.For(register), impostor);
        var forged = await Assert.ThrowsAsync<RpcException>(() => OpenAsync(grpc, new AgentMessage { Register = register })).Within();
        Assert.Equal(StatusCode.Unauthenticated, forged.StatusCode);
        Assert.Contains("signature", forged.Status.Detail, StringComparison.Ordinal);

        // A heartbeat before registering.
        var early = await Assert.ThrowsAsync<RpcException>(() => OpenAsync(grpc, new AgentMessage { Heartbeat = new Heartbeat() })).Within();
        Assert.Equal(StatusCode.InvalidArgument, early.StatusCode);

        // Raw garbage on the gRPC endpoint.
        using var h2 = new HttpClient(new SocketsHttpHandler()) { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var content = new ByteArrayContent([0, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        content.Headers.ContentType = new("application/grpc");
        using var garbage = await h2.PostAsync(new Uri(cloud.Agents, "decloud.agent.v1.AgentControl/Connect"), content).Within();
        Assert.NotEqual("0", garbage.TrailingHeaders.TryGetValues("grpc-status", out var s) ? s.First() : garbage.Headers.TryGetValues("grpc-status", out var h) ? h.First() : "missing");

        // The good agent is still registered and online; the forged node never appeared.
        var nodes = await cloud.NodesAsync();
        Assert.Single(nodes);
        Assert.True(nodes[0].Online);
    }

    [Fact]
    public async Task Api_BadRequests_ProblemDetailsAndNothingStored()
    {
        await using var cloud = await Cloud.StartAsync();
        using var anonymous = new HttpClient { BaseAddress = cloud.Api };
        var noToken = await anonymous.GetAsync("api/v1/vms").Within();
        Assert.Equal(HttpStatusCode.Unauthorized, noToken.StatusCode);
        Assert.Equal("application/problem+json", noToken.Content.Headers.ContentType?.MediaType);

        var badToken = new HttpRequestMessage(HttpMethod.Get, "api/v1/vms");
        badToken.Headers.Authorization = new("Bearer", "forged");
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(badToken).Within()).StatusCode);

        using var client = await cloud.SignInAsync();
        var noNode = await Assert.ThrowsAsync<ApiException>(() => client.CreateVmAsync(new { name = "x", computePoints = 1, memoryMiB = 1, storageGiB = 1 }, default)).Within();
        Assert.Equal(409, noNode.Status);
        var badSize = await Assert.ThrowsAsync<ApiException>(() => client.CreateVmAsync(new { name = "x", computePoints = 0, memoryMiB = 1, storageGiB = 1 }, default)).Within();
        Assert.Equal(400, badSize.Status);
        Assert.Contains("computePoints", badSize.Detail, StringComparison.Ordinal);
        var badTier = await Assert.ThrowsAsync<ApiException>(() => client.CreateVmAsync(new { computePoints = 1, memoryMiB = 1, storageGiB = 1, qualityTier = "Gold" }, default)).Within();
        Assert.Equal(400, badTier.Status);
        var unknown = await Assert.ThrowsAsync<ApiException>(() => client.GetVmAsync(Guid.NewGuid().ToString("N"), default)).Within();
        Assert.Equal(404, unknown.Status);
        var malformedId = await Assert.ThrowsAsync<ApiException>(() => client.GetVmAsync("not-an-id", default)).Within();
        Assert.Equal(400, malformedId.Status);

        var truncated = await anonymous.PostAsync("api/v1/auth/verify", new StringContent("{\"message\": ", System.Text.Encoding.UTF8, "application/json")).Within();
        Assert.Equal(HttpStatusCode.BadRequest, truncated.StatusCode);
        var badSig = await anonymous.PostAsJsonAsync("api/v1/auth/verify", new { message = "x wants you to sign in", signature = "0x00" }).Within();
        Assert.Equal(HttpStatusCode.Unauthorized, badSig.StatusCode);
        var problem = JsonDocument.Parse(await badSig.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(401, problem.GetProperty("status").GetInt32());

        Assert.Empty(await client.ListVmsAsync(default).Within());
    }

    private static async Task OpenAsync(AgentControl.AgentControlClient grpc, AgentMessage first)
    {
        using var call = grpc.Connect();
        await call.RequestStream.WriteAsync(first);
        await call.RequestStream.CompleteAsync();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
        }
    }
}
