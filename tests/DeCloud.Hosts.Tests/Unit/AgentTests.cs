using DeCloud.Agent;
using DeCloud.Agent.Benchmark;
using DeCloud.Agent.Control;
using DeCloud.Agent.Hypervisors;
using DeCloud.Agent.Ports;
using DeCloud.Agent.State;
using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;
using DeCloud.Protocol.V1;
using DeCloud.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Hosts.Tests.Unit;

public sealed class AgentTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dch-agent-").FullName;

    private AgentAuthTestKit? _auth;

    public void Dispose()
    {
        _auth?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Execute_SameCommandTwice_RunsOnceAndReturnsStoredAck()
    {
        var (executor, state, hv) = CreateSut();
        var create = CreateCommand(VmId.New().ToString(), seq: 1);
        var first = await executor.ExecuteAsync(create, default).Within();
        await hv.DeleteAsync(create.CreateVm.VmId, default); // if it ran again, the VM would come back
        var second = await executor.ExecuteAsync(create, default).Within();

        Assert.Equal(AckStatus.Succeeded, first.Status);
        Assert.Equal(first, second);
        Assert.Empty(await hv.ListAsync(default));
        Assert.Single(state.ListVms());
        Assert.Equal(1UL, state.LastExecutedSequence());
    }

    [Fact]
    public async Task Execute_UnknownVmOrMalformed_RejectedAndNothingStored()
    {
        var (executor, state, _) = CreateSut();
        var stop = new Command { CommandId = "c2", Sequence = 2, StopVm = new StopVm { VmId = VmId.New().ToString() } };
        var bad = new Command { CommandId = "c3", Sequence = 3, CreateVm = new CreateVm { VmId = "not-an-id" } };
        var empty = new Command { CommandId = "c4", Sequence = 4 };

        Assert.Equal(AckStatus.Rejected, (await executor.ExecuteAsync(stop, default).Within()).Status);
        Assert.Equal(AckStatus.Rejected, (await executor.ExecuteAsync(bad, default).Within()).Status);
        Assert.Equal(AckStatus.Rejected, (await executor.ExecuteAsync(empty, default).Within()).Status);
        Assert.Empty(state.ListVms());
    }

    [Fact]
    public async Task Execute_StopThenDelete_StateFollowsAndOnlyDeleteRemoves()
    {
        var (executor, state, hv) = CreateSut();
        var id = VmId.New().ToString();
        await executor.ExecuteAsync(CreateCommand(id, 1), default).Within();
        await executor.ExecuteAsync(new Command { CommandId = "s", Sequence = 2, StopVm = new StopVm { VmId = id } }, default).Within();
        Assert.False(state.ListVms().Single().ShouldRun);
        Assert.Equal(VmPowerState.Stopped, (await hv.ListAsync(default))[id]);

        await executor.ExecuteAsync(new Command { CommandId = "d", Sequence = 3, DeleteVm = new DeleteVm { VmId = id } }, default).Within();
        Assert.Empty(state.ListVms());
        Assert.Empty(await hv.ListAsync(default));
    }

    [Theory]
    [InlineData("CPU speed:\n    events per second:  1234.56\n", 1234.56)]
    [InlineData("events per second: 7", 7)]
    public void ParseSysbench_RealOutput_ReadsEventsPerSecond(string output, double expected) =>
        Assert.Equal(expected, ComputePointMeter.ParseSysbench(output));

    [Theory]
    [InlineData("")]
    [InlineData("events per second: 0")]
    [InlineData("events per second: -5")]
    [InlineData("FATAL: no such test")]
    public void ParseSysbench_Garbage_Null(string output) => Assert.Null(ComputePointMeter.ParseSysbench(output));

    [Fact]
    public void BuiltinBenchmark_ShortRun_PositiveScoreAndAtLeastOnePoint()
    {
        var score = ComputePointMeter.RunBuiltin(1, TimeSpan.FromMilliseconds(200), TimeProvider.System, default);
        Assert.True(score > 0);
        Assert.Equal(1228, ComputePointMeter.PrimeEvent()); // primes in 3..9999 (1,229 below 10,000, less 2)
        Assert.True(Math.Max(1, ComputePointNormalizer.Default.Normalize(score)) >= 1);
    }

    [Fact]
    public void Options_Invalid_EveryProblemNamesItsProperty()
    {
        var o = new AgentOptions { OrchestratorUrl = "ftp://x", Hypervisor = "xen", Benchmark = "fast", BehindNat = true, RelayCapable = true, ComputePoints = -1 };
        var errors = o.Validate();
        foreach (var name in new[] { "OrchestratorUrl", "WalletKeyFile", "Hypervisor", "Benchmark", "RelayCapable", "ComputePoints" })
        {
            Assert.Contains(errors, e => e.Contains(name, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void AddDeCloudAgent_CalledTwice_RegistersOnce()
    {
        var services = new ServiceCollection();
        services.AddDeCloudAgent(o => o.OrchestratorUrl = "http://127.0.0.1:1");
        var count = services.Count;
        var builder = services.AddDeCloudAgent();
        Assert.Equal(count, services.Count);
        Assert.Same(services, builder.Services);
    }

    private (CommandExecutor Executor, AgentState State, SimulatedHypervisor Hypervisor) CreateSut()
    {
        var state = new AgentState(new SqliteDatabase(Path.Combine(_dir, "agent.db")));
        var hv = new SimulatedHypervisor();
        var options = Microsoft.Extensions.Options.Options.Create(new AgentOptions { WalletPrivateKey = new string('1', 64), MachineId = "dch-unit" });
        var identity = new AgentIdentity(options);
        _auth ??= new AgentAuthTestKit(_dir, identity.NodeId, TimeProvider.System);
        var relay = new DeCloud.Agent.Relaying.AgentRelay(options, state, _auth.RelayAuthenticator, new DeCloud.Agent.Security.RelayTokenCredentials(identity),
            NullLoggerFactory.Instance, TimeProvider.System);
        var ports = new PublicPorts(options, new TcpPortForwarder("127.0.0.1"), NullLoggerFactory.Instance, TimeProvider.System);
        var storage = new DeCloud.Agent.Storage.AgentStorage(options, state, new AckOutbox(), _auth.MoveGate, NullLoggerFactory.Instance, TimeProvider.System);
        var executor = new CommandExecutor(state, hv, ports, relay, storage, new AgentIdentity(options), options, new FakeTimeProvider(), NullLogger<CommandExecutor>.Instance);
        return (executor, state, hv);
    }

    private static Command CreateCommand(string id, ulong seq) => new()
    {
        CommandId = "create-" + id,
        Sequence = seq,
        CreateVm = new CreateVm { VmId = id, Name = "t", Resources = new Capacity { ComputePoints = 1, MemoryMib = 64, StorageGib = 1 }, Start = true },
    };
}
