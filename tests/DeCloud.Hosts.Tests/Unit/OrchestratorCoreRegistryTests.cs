using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Orchestrator;
using DeCloud.Orchestrator.Agents;
using DeCloud.Orchestrator.Storage;
using DeCloud.Protocol;
using DeCloud.Protocol.V1;
using DeCloud.Testing;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Nethereum.Signer;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>Nodes through Core's registry: registration with hardware, the health monitor, reputation counters.</summary>
public sealed class OrchestratorCoreRegistryTests : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dh9c-registry-").FullName;
    private readonly OrchestratorCoreStores _stores = new();
    private readonly EthECKey _key = EthECKey.GenerateKey();
    private WebApplication? _app;

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync().Within();
            await _app.DisposeAsync();
        }

        await _stores.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void Verify_RegisterWithHardwareAndPrices_RegistrationCarriesThem()
    {
        var verifier = new RegistrationVerifier(TimeProvider.System, TimeSpan.FromMinutes(5), 1000);

        var (verified, error) = verifier.Verify(Signed(Register("dh9c-hw")));

        Assert.Null(error);
        var r = verified!.Registration;
        Assert.Equal((12, "AMD EPYC 7443P 12-Core Processor", 6400.5), (r.Hardware.CpuCores, r.Hardware.CpuModel, r.Hardware.BenchmarkScore));
        Assert.Equal((NodeConnectivity.Public, "127.0.0.1:22"), (r.Connectivity, r.PublicEndpoint));
        Assert.Equal(new NodePricing(0.02m, 0.003m, 0.0002m, 0m), verified.OfferedPricing);
        Assert.Equal("dh9c-hw", verified.Agent.MachineId);
    }

    [Theory]
    [InlineData("cores", "hardware.cpuCores")]
    [InlineData("model", "hardware.cpuModel")]
    [InlineData("endpoint", "publicEndpoint")]
    [InlineData("price", "pricing.compute_point_hour")]
    [InlineData("rate", "pricing.computePointHour")]
    public void Verify_BadHardwareEndpointOrPrice_ErrorNamesTheField(string what, string field)
    {
        var verifier = new RegistrationVerifier(TimeProvider.System, TimeSpan.FromMinutes(5), 1000);
        var register = Register("dh9c-bad");
        switch (what)
        {
            case "cores": register.CpuCores = 0; break;
            case "model": register.CpuModel = string.Empty; break;
            case "endpoint": register.PublicEndpoint = "no-port"; break;
            case "price": register.Pricing.ComputePointHour = "-1"; break;
            default: register.Pricing.ComputePointHour = "5000"; break;
        }

        var (verified, error) = verifier.Verify(Signed(register));

        Assert.Null(verified);
        Assert.Contains(field, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Register_OverGrpc_HardwareInRegistryAndNodeApiThenOfflineByHealthMonitorAndBackOnline()
    {
        var (api, agents) = await StartOrchestratorAsync();
        using var channel = GrpcChannel.ForAddress(agents);
        var grpc = new AgentControl.AgentControlClient(channel);
        var register = Signed(Register("dh9c-grpc"));
        var node = NodeId.Parse(register.NodeId);

        // Registered, then silent: no heartbeat is sent on this stream.
        using (var call = grpc.Connect())
        {
            await call.RequestStream.WriteAsync(new AgentMessage { Register = register }).Within();
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None).Within());
            Assert.Equal(OrchestratorMessage.BodyOneofCase.Registered, call.ResponseStream.Current.BodyCase);

            var registry = _app!.Services.GetRequiredService<NodeRegistry>();
            var stored = registry.Find(node)!;
            Assert.Equal((12, "AMD EPYC 7443P 12-Core Processor"), (stored.Registration.Hardware.CpuCores, stored.Registration.Hardware.CpuModel));
            Assert.Equal(6, stored.Capacity.ComputePoints); // 6400.5 / 1000 per point
            Assert.Equal(0.02m, stored.Registration.Pricing.ComputePointHour);

            using var http = new HttpClient { BaseAddress = api };
            var view = JsonDocument.Parse(await http.GetStringAsync("api/v1/nodes/" + node).Within()).RootElement;
            Assert.Equal(12, view.GetProperty("cpuCores").GetInt32());
            Assert.Equal("127.0.0.1:22", view.GetProperty("publicEndpoint").GetString());
            Assert.True(view.GetProperty("online").GetBoolean());

            // The registry's health monitor marks it offline once heartbeats are overdue, and its silent stream is ended.
            await WaitAsync(() => registry.Find(node)!.IsOnline ? null : "offline", "the node to go offline");
            Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None).Within(TimeSpan.FromSeconds(30)));
        }

        // It dials in again and heartbeats: online again, for search and placement.
        using (var again = grpc.Connect())
        {
            await again.RequestStream.WriteAsync(new AgentMessage { Register = Signed(Register("dh9c-grpc")) }).Within();
            Assert.True(await again.ResponseStream.MoveNext(CancellationToken.None).Within());
            await again.RequestStream.WriteAsync(new AgentMessage { Heartbeat = new Heartbeat { Sequence = 1, Used = new Capacity { ComputePoints = 1 } } }).Within();
            var registry = _app.Services.GetRequiredService<NodeRegistry>();
            await WaitAsync(() => registry.Find(node) is { IsOnline: true, Used.ComputePoints: 1 } ? "online" : null, "the heartbeat to be recorded");
            using var http = new HttpClient { BaseAddress = api };
            var found = await http.GetFromJsonAsync<JsonElement>("api/v1/nodes?online=true").Within();
            Assert.Equal(node.Value, Assert.Single(found.EnumerateArray()).GetProperty("id").GetString());
            await again.RequestStream.CompleteAsync();
        }
    }

    [Fact]
    public async Task RecordAsync_VmRunningThenDeleted_HostedAndCompletedCountedOnceEach()
    {
        var store = await _stores.OpenAsync(Path.Combine(_dir, "orchestrator.db"), new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddDays(10)));
        var node = await OrchestratorCoreStores.RegisterAsync(store);
        var reputation = new NodeReputation(store.Registry);
        var vm = new VmRecord(VmId.New(), OrchestratorCoreStores.Wallet, "t", node, new Resources(1, 256, 1), QualityTier.Standard, BandwidthTier.Standard,
            VmStates.Provisioning, "unknown", null, new Dictionary<string, bool>(), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);
        var create = store.CreateVm(vm, seq => new Command { CommandId = "c1", Sequence = seq, CreateVm = new CreateVm { VmId = vm.Id.ToString() } });

        Assert.True(store.ApplyAck(node, new CommandAck { CommandId = create.CommandId, Status = AckStatus.Succeeded }, DateTimeOffset.UnixEpoch, out var running));
        await reputation.RecordAsync(running!.Value).Within();
        await reputation.RecordAsync(running.Value).Within(); // a repeated report counts once
        var delete = store.TransitionWithCommand(vm.Id, node, [VmStates.Running], VmStates.Deleting,
            seq => new Command { CommandId = "d1", Sequence = seq, DeleteVm = new DeleteVm { VmId = vm.Id.ToString() } }, DateTimeOffset.UnixEpoch)!;
        Assert.True(store.ApplyAck(node, new CommandAck { CommandId = delete.CommandId, Status = AckStatus.Succeeded }, DateTimeOffset.UnixEpoch, out var deleted));
        await reputation.RecordAsync(deleted!.Value).Within();

        var record = store.Registry.Find(node)!;
        Assert.Equal((1L, 1L), (record.VmsHosted, record.VmsCompletedCleanly));
        Assert.Equal(VmStates.Deleted, deleted.Value.State);
    }

    private async Task<(Uri Api, Uri Agents)> StartOrchestratorAsync()
    {
        _app = OrchestratorApplication.Create(
        [
            "--Orchestrator:ApiUrl=http://127.0.0.1:0", "--Orchestrator:AgentUrl=http://127.0.0.1:0", "--Orchestrator:DataDirectory=" + _dir,
            "--Orchestrator:HeartbeatInterval=00:00:00.500", "--Orchestrator:OfflineAfter=00:00:06", "--Logging:LogLevel:Default=Warning",
        ]);
        await _app.StartAsync().Within();
        var a = OrchestratorApplication.Addresses(_app);
        return (a.Api, a.Agents);
    }

    private static async Task WaitAsync(Func<string?> probe, string what)
    {
        var deadline = TimeProvider.System.GetUtcNow().AddSeconds(30);
        while (probe() is null)
        {
            Assert.True(TimeProvider.System.GetUtcNow() < deadline, "timed out waiting for " + what);
            await Task.Delay(50);
        }
    }

    private Register Register(string machine)
    {
        var wallet = WalletAddress.Parse(_key.GetPublicAddress());
        return new Register
        {
            NodeId = NodeId.FromMachine(machine, wallet).Value,
            OperatorWallet = wallet.ToString(),
            MachineId = machine,
            IssuedAtUnixMs = TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds(),
            Nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)),
            Capacity = new Capacity { ComputePoints = 6, MemoryMib = 8192, StorageGib = 100 },
            Region = "eu-west",
            AgentVersion = "1.0.0",
            CpuCores = 12,
            CpuModel = "AMD EPYC 7443P 12-Core Processor",
            BenchmarkScore = 6400.5,
            PublicHost = "127.0.0.1",
            PublicEndpoint = "127.0.0.1:22",
            Pricing = new RegisterPricing { ComputePointHour = "0.02", MemoryGibHour = "0.003", StorageGibHour = "0.0002", GpuHour = "" },
        };
    }

    private Register Signed(Register r)
    {
        r.Signature = new EthereumMessageSigner().EncodeUTF8AndSign(RegistrationText.For(r), _key);
        return r;
    }
}

/// <summary>An orchestrator.db from before nodes moved to Core's registry is migrated without losing agent, VM or command rows.</summary>
public sealed class OrchestratorCoreMigrationTests : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dh9c-migrate-").FullName;
    private readonly OrchestratorCoreStores _stores = new();

    public async ValueTask DisposeAsync()
    {
        await _stores.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Migrate_DatabaseOfTheOldSchema_AgentRowsVmsAndPendingCommandsKeptCoreTablesCreated()
    {
        var path = Path.Combine(_dir, "orchestrator.db");
        var node = NodeId.FromMachine("old", OrchestratorCoreStores.Wallet);
        var vm = VmId.New();
        var old = new DeCloud.Core.Sqlite.SqliteDatabase(path);
        old.Migrate("orchestrator", OrchestratorStore.MigrationScripts.Take(3).ToArray());
        using (var c = old.Open())
        using (var cmd = c.CreateCommand())
        {
            var payload = Convert.ToHexString(new Command { CommandId = "c-old", Sequence = 6, CreateVm = new CreateVm { VmId = vm.ToString() } }.ToByteArray());
            cmd.CommandText = $$"""
                INSERT INTO nodes (id, operator, machine_id, region, tags, architecture, behind_nat, public_host, relay_capable, relay_endpoint,
                    cap_cp, cap_mem, cap_storage, cap_gpus, online, registered_at, last_seen, next_seq, relay_node_id)
                VALUES ('{{node}}', '{{OrchestratorCoreStores.Wallet.ToLowerHex()}}', 'old', 'default', '', 'x86_64', 0, '127.0.0.1', 1, '127.0.0.1:7835',
                    8, 8192, 100, 0, 1, 0, 0, 7, NULL);
                INSERT INTO vms (id, owner, name, node_id, cp, mem, storage, gpus, quality, bandwidth, state, power, error, services, created_at, updated_at)
                VALUES ('{{vm}}', '{{OrchestratorCoreStores.Wallet.ToLowerHex()}}', 'kept', '{{node}}', 1, 256, 1, 0, 'Standard', 'Standard', 'Provisioning', 'unknown', NULL, '{}', 0, 0);
                INSERT INTO commands (command_id, node_id, seq, kind, vm_id, payload, status, created_at)
                VALUES ('c-old', '{{node}}', 6, 'CreateVm', '{{vm}}', x'{{payload}}', 'pending', 0);
                INSERT INTO node_online (node_id, since, until) VALUES ('{{node}}', 0, NULL);
                """;
            cmd.ExecuteNonQuery();
        }

        var store = await _stores.OpenAsync(path, new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddDays(1)));

        Assert.Equal("kept", store.GetVm(vm)!.Name);
        Assert.Equal("c-old", Assert.Single(store.PendingCommands(node)).CommandId);
        // The node is unknown to the registry until its agent registers again; its agent row (relay role, sequence) is kept.
        Assert.Null(store.GetNode(node));
        await OrchestratorCoreStores.RegisterAsync(store, "old", relayCapable: false);
        Assert.Equal("old", store.GetNode(node)!.MachineId);
        var next = store.EnqueueCommand(node, null, seq => new Command { CommandId = "c-new", Sequence = seq }, DateTimeOffset.UnixEpoch);
        Assert.Equal(7UL, next.Sequence);
    }
}
