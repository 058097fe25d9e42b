using DeCloud.Agent.Control;
using DeCloud.Agent.State;
using DeCloud.Billing.Ledger;
using DeCloud.Billing.Metering;
using DeCloud.Billing.Pricing;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Core.Sqlite;
using DeCloud.Orchestrator;
using DeCloud.Orchestrator.Agents;
using DeCloud.Orchestrator.Billing;
using DeCloud.Orchestrator.Storage;
using DeCloud.Orchestrator.Vms;
using DeCloud.Protocol.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using System.Diagnostics.Metrics;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>The orchestrator's billing hooks (VM placement, heartbeat usage, the billing pass, featured nodes) and the agent's usage counters.</summary>
public sealed class BillingHookTests : IAsyncLifetime
{
    private static readonly WalletAddress User = WalletAddress.Parse("0x1111111111111111111111111111111111111111");
    private static readonly WalletAddress Operator = WalletAddress.Parse("0x2222222222222222222222222222222222222222");
    private static readonly WalletAddress RelayOperator = WalletAddress.Parse("0x3333333333333333333333333333333333333333");

    private readonly string _dir = Directory.CreateTempSubdirectory("dch-billing-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly NodePlacement _placement;
    private readonly OrchestratorCoreStores _stores = new();
    private OrchestratorStore _store = null!;
    private readonly BillingLedger _ledger;
    private readonly PriceCalculator _prices = new(new PricingOptions());
    private readonly NodePriceBook _book;
    private readonly UsageMeter _meter;

    public BillingHookTests()
    {
        var db = new SqliteDatabase(Path.Combine(_dir, "orchestrator.db"));
        _placement = new NodePlacement(_time);
        _ledger = new BillingLedger(db, timeProvider: _time);
        _book = new NodePriceBook(db, new PricingOptions(), _time);
        _meter = new UsageMeter(_ledger, _prices, _book, new MeteringOptions(), timeProvider: _time);
    }

    public async ValueTask InitializeAsync() =>
        _store = await _stores.OpenAsync(Path.Combine(_dir, "orchestrator.db"), _time, _placement, new NodeRegistryOptions { OfflineAfter = TimeSpan.FromSeconds(30) });

    public async ValueTask DisposeAsync()
    {
        await _stores.DisposeAsync();
        _metrics.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task OnVmPlaced_NodeWithOperatorPrices_RateFrozenAtNodePricesNotTouchedByLaterChanges()
    {
        var node = await AddNodeAsync("m1", Operator);
        _book.SetOperatorPrices(node, new ResourceRates(0.02m, 0.01m, 0.0002m, 0.2m));
        var vm = NewVm(node);
        var hook = new VmBilling(_meter, _store, NullLogger<VmBilling>.Instance);

        hook.OnVmCreated(vm);
        var atCreation = _meter.GetLease(vm.Id)!;
        hook.OnVmPlaced(vm);
        var placed = _meter.GetLease(vm.Id)!;
        _book.SetOperatorPrices(node, new ResourceRates(0.5m, 0.5m, 0.5m, 0.5m));
        hook.OnVmPlaced(vm);

        Assert.Equal(_prices.EstimateWithDefaults(vm.Resources, vm.QualityTier, vm.BandwidthTier).HourlyUsdc, atCreation.HourlyRateUsdc);
        Assert.Null(atCreation.Node);
        var expected = _prices.Estimate(vm.Resources, vm.QualityTier, vm.BandwidthTier, new ResourceRates(0.02m, 0.01m, 0.0002m, 0.2m)).HourlyUsdc;
        Assert.Equal(expected, placed.HourlyRateUsdc);
        Assert.NotEqual(atCreation.HourlyRateUsdc, placed.HourlyRateUsdc);
        Assert.Equal(expected, _meter.GetLease(vm.Id)!.HourlyRateUsdc);
        Assert.Equal(Operator, placed.Operator);
        Assert.Equal(node, placed.Node);
    }

    [Fact]
    public async Task OnVmPlaced_NatNodeWithRelay_RelayOperatorOnLease()
    {
        var relay = await AddNodeAsync("relay", RelayOperator);
        var nat = await AddNodeAsync("nat", Operator, behindNat: true);
        _store.SetRelay(nat, relay);
        var vm = NewVm(nat);

        new VmBilling(_meter, _store, NullLogger<VmBilling>.Instance).OnVmPlaced(vm);

        Assert.Equal(RelayOperator, _meter.GetLease(vm.Id)!.RelayOperator);
        Assert.Equal(Operator, _meter.GetLease(vm.Id)!.Operator);
    }

    [Fact]
    public async Task Create_HookSeesVmBeforeStoredAndThrows_NothingStoredAndCapacityReleased()
    {
        var node = await AddNodeAsync("m1", Operator, points: 2);
        var failing = new RecordingHook(_store, fail: true);
        var request = new VmRequest("a", new Resources(2, 256, 1), QualityTier.Dedicated, BandwidthTier.Standard, node, "debian-12");

        Assert.Throws<InvalidOperationException>(() => CreateService(failing).Create(User, request));

        Assert.Equal([false], failing.StoredWhenCalled);
        Assert.Empty(_store.ListVms(null));
        var recording = new RecordingHook(_store, fail: false);
        var (outcome, vm, _, _) = CreateService(recording).Create(User, request); // the whole node again: the failed hold was released
        Assert.Equal(VmOutcome.Ok, outcome);
        Assert.Equal([false], recording.StoredWhenCalled);
        Assert.Equal(vm!.Id, recording.Placed.Single());
    }

    [Fact]
    public async Task OnHeartbeat_SameReportTwiceAndForeignNode_ChargedOnceForeignRejected()
    {
        var node = await AddNodeAsync("m1", Operator);
        var other = await AddNodeAsync("m2", Operator);
        var vm = NewVm(node);
        new VmBilling(_meter, _store, NullLogger<VmBilling>.Instance).OnVmPlaced(vm);
        var sink = CreateSink();
        var hb = Heartbeat(vm.Id, sequence: 0, runningSeconds: 7200);

        Assert.Null(sink.OnHeartbeat(node, hb));
        var first = _meter.Accrue();
        Assert.Null(sink.OnHeartbeat(node, hb));
        Assert.Null(sink.OnHeartbeat(other, Heartbeat(vm.Id, sequence: 1, runningSeconds: 99_000)));
        var second = _meter.Accrue();

        var rate = _meter.GetLease(vm.Id)!.HourlyRateUsdc;
        Assert.Equal(2, first.Postings);
        Assert.Equal(0, second.Postings);
        Assert.Equal(-(long)Math.Floor(rate * 2 * 1_000_000m), _ledger.GetBalance(LedgerAccount.User(User)));
        Assert.Equal(0, _ledger.SumOfAllEntries());
    }

    [Fact]
    public async Task OnHeartbeat_MalformedReport_ProblemAndNothingStored()
    {
        var node = await AddNodeAsync("m1", Operator);
        var sink = CreateSink();
        var bad = new Heartbeat { Usage = new UsageReport { Vms = { new UsageCounters { VmId = "not-a-vm", RunningSeconds = 5 } } } };
        var badTime = Heartbeat(VmId.New(), 0, 5);
        badTime.Usage.Vms[0].ObservedAtUnixMs = long.MaxValue;

        Assert.Contains("not a VM id", sink.OnHeartbeat(node, bad), StringComparison.Ordinal);
        Assert.Contains("not a time", sink.OnHeartbeat(node, badTime), StringComparison.Ordinal);
        Assert.Null(sink.OnHeartbeat(node, new Heartbeat()));
        Assert.Equal(0, _meter.Accrue().Postings);
    }

    [Fact]
    public async Task RunOnce_VmDeletedAndUserOverdrawn_LeaseClosedAndOtherRunningVmStopped()
    {
        var node = await AddNodeAsync("m1", Operator);
        var service = CreateService(new VmBilling(_meter, _store, NullLogger<VmBilling>.Instance));
        var a = service.Create(User, new VmRequest("a", new Resources(1, 256, 1), QualityTier.Standard, BandwidthTier.Standard, node, "debian-12")).Vm!;
        var b = service.Create(User, new VmRequest("b", new Resources(1, 256, 1), QualityTier.Standard, BandwidthTier.Standard, node, "debian-12")).Vm!;
        AckAll(node);
        CreateSink().OnHeartbeat(node, Heartbeat(a.Id, 3, 1800));
        service.Delete(User, a.Id);
        AckAll(node);
        Assert.Equal(VmStates.Deleted, _store.GetVm(a.Id)!.State);
        var loop = CreateLoop(service);

        loop.RunOnce();
        loop.RunOnce();

        var lease = _meter.GetLease(a.Id)!;
        Assert.True(lease.IsClosed);
        Assert.Equal((long)Math.Floor(lease.HourlyRateUsdc / 2 * 1_000_000m), lease.ChargedMicroUsdc);
        Assert.Equal(-lease.ChargedMicroUsdc, _ledger.GetBalance(LedgerAccount.User(User)));
        Assert.True(_ledger.GetOverdrawnUsers().ContainsKey(User));
        Assert.Equal(VmStates.Stopping, _store.GetVm(b.Id)!.State);
        Assert.False(_meter.GetLease(b.Id)!.IsClosed);
    }

    [Fact]
    public async Task RunOnce_UserWithBalance_NothingStopped()
    {
        var node = await AddNodeAsync("m1", Operator);
        var service = CreateService(new VmBilling(_meter, _store, NullLogger<VmBilling>.Instance));
        _ledger.Post(LedgerPosting.Transfer("deposit:test", LedgerAccount.ExternalDeposits, LedgerAccount.User(User), 5_000_000));
        var a = service.Create(User, new VmRequest("a", new Resources(1, 256, 1), QualityTier.Standard, BandwidthTier.Standard, node, "debian-12")).Vm!;
        AckAll(node);
        CreateSink().OnHeartbeat(node, Heartbeat(a.Id, 0, 3 * 3600));

        var accrued = CreateLoop(service).RunOnce();

        Assert.Equal(3, accrued.Postings);
        Assert.Equal(VmStates.Running, _store.GetVm(a.Id)!.State);
        Assert.Equal(5_000_000 - accrued.ChargedMicroUsdc, _ledger.GetBalance(LedgerAccount.User(User)));
    }

    [Fact]
    public async Task Rank_OnlineNodes_BestValueFirstOfflineLeftOutReasonGiven()
    {
        var dear = await AddNodeAsync("dear", Operator);
        var cheap = await AddNodeAsync("cheap", Operator);
        var unknown = await AddNodeAsync("unknown", Operator);
        var offline = await AddNodeAsync("offline", Operator);
        _time.Advance(TimeSpan.FromSeconds(31));
        foreach (var online in new[] { dear, cheap, unknown })
        {
            await _store.RecordHeartbeatAsync(online, default, [], _time.GetUtcNow());
        }

        await _store.Registry.CheckHealthAsync(); // the one without a heartbeat goes offline
        _book.SetOperatorPrices(cheap, ResourceRates.DefaultFloors);
        _book.SetOperatorPrices(unknown, ResourceRates.DefaultFloors);
        _book.SetOperatorPrices(dear, new ResourceRates(0.05m, 0.02m, 0.001m, 0.5m));
        var uptime = new FixedUptime(new() { [dear] = 1m, [cheap] = 0.99m });
        var featured = new FeaturedNodes(_store, _book, _prices, _time, uptime);

        var ranked = featured.Rank(10);

        Assert.Equal([cheap, unknown, dear], ranked.Select(r => r.Node.Id));
        Assert.Equal(1m, ranked[0].PriceScore);
        Assert.Null(ranked[1].Uptime);
        Assert.Contains("not measured", ranked[1].Reason, StringComparison.Ordinal);
        Assert.Contains("uptime 99.0%", ranked[0].Reason, StringComparison.Ordinal);
        Assert.All(ranked, r => Assert.InRange(r.Score, 0m, 1m));
        Assert.Equal([cheap], featured.Rank(1).Select(r => r.Node.Id));
        Assert.Equal(TimeSpan.FromDays(30), uptime.Windows.Distinct().Single());
    }

    [Fact]
    public void Fill_RunningStoppedAndRestarted_CountersCumulativeSequenceOnlyOnChange()
    {
        var state = new AgentState(new SqliteDatabase(Path.Combine(_dir, "agent.db")));
        var reporter = new UsageReporter(state, _time);
        var vm = VmId.New().ToString();
        var never = VmId.New().ToString();

        var r0 = Report(reporter, (vm, VmPowerState.Running), (never, VmPowerState.Stopped));
        _time.Advance(TimeSpan.FromSeconds(5.5));
        var r1 = Report(reporter, (vm, VmPowerState.Running));
        var r1Again = Report(reporter, (vm, VmPowerState.Running));
        _time.Advance(TimeSpan.FromSeconds(10));
        var stopped = Report(reporter, (vm, VmPowerState.Stopped));
        _time.Advance(TimeSpan.FromHours(2));
        var restarted = new UsageReporter(state, _time);
        var afterRestart = Report(restarted, (vm, VmPowerState.Running));
        _time.Advance(TimeSpan.FromSeconds(3));
        var r2 = Report(restarted, (vm, VmPowerState.Running));

        Assert.Equal((0L, 0L), (r0[vm].Sequence, r0[vm].RunningSeconds));
        Assert.False(r0.ContainsKey(never));
        Assert.Equal((1L, 5L), (r1[vm].Sequence, r1[vm].RunningSeconds));
        Assert.Equal(r1[vm], r1Again[vm]);
        Assert.Equal(r1[vm], stopped[vm]);
        Assert.Equal(r1[vm], afterRestart[vm]); // the agent's own downtime is not counted
        Assert.Equal((2L, 8L), (r2[vm].Sequence, r2[vm].RunningSeconds));
        Assert.Equal(_time.GetUtcNow().ToUnixTimeMilliseconds(), r2[vm].ObservedAtUnixMs);
    }

    private static Dictionary<string, UsageCounters> Report(UsageReporter reporter, params (string Id, VmPowerState State)[] vms)
    {
        var hb = new Heartbeat();
        foreach (var (id, s) in vms)
        {
            hb.Vms.Add(new VmStatus { VmId = id, State = s });
        }

        reporter.Fill(hb);
        return hb.Usage?.Vms.ToDictionary(u => u.VmId) ?? [];
    }

    private static Heartbeat Heartbeat(VmId vm, long sequence, long runningSeconds) => new()
    {
        Usage = new UsageReport
        {
            Vms = { new UsageCounters { VmId = vm.ToString(), Sequence = sequence, RunningSeconds = runningSeconds, ObservedAtUnixMs = 1_000 } },
        },
    };

    private void AckAll(NodeId node)
    {
        foreach (var c in _store.PendingCommands(node))
        {
            _store.ApplyAck(node, new CommandAck { CommandId = c.CommandId, Sequence = c.Sequence, Status = AckStatus.Succeeded }, _time.GetUtcNow());
        }
    }

    private UsageIngest CreateSink() => new(_meter, new BillingHostMetrics(_metrics.GetRequiredService<IMeterFactory>()), NullLogger<UsageIngest>.Instance);

    private BillingLoop CreateLoop(VmService service) => new(_meter, _ledger, _store, service,
        new DepositGateway(_metrics, Options.Create(new DeCloud.Billing.BillingOptions())), new BillingHostMetrics(_metrics.GetRequiredService<IMeterFactory>()),
        Options.Create(new BillingHostOptions()), _time, NullLogger<BillingLoop>.Instance);

    private VmService CreateService(IVmBillingHook hook) => new(_store, _placement, hook, new AgentSessions(),
        new OrchestratorMetrics(_metrics.GetRequiredService<IMeterFactory>()), Options.Create(new OrchestratorOptions()), _time, NullLogger<VmService>.Instance);

    private Task<NodeId> AddNodeAsync(string machine, WalletAddress op, bool behindNat = false, int points = 8) =>
        OrchestratorCoreStores.RegisterAsync(_store, machine, op, points, behindNat, relayCapable: !behindNat);

    private VmRecord NewVm(NodeId node) => new(VmId.New(), User, "t", node, new Resources(2, 1024, 10), QualityTier.Standard, BandwidthTier.Standard,
        VmStates.Provisioning, "unknown", null, new Dictionary<string, bool>(), _time.GetUtcNow(), _time.GetUtcNow());

    /// <summary>Records when it is called (and whether the VM row existed yet); optionally fails like a broken billing store.</summary>
    private sealed class RecordingHook(OrchestratorStore store, bool fail) : IVmBillingHook
    {
        public List<bool> StoredWhenCalled { get; } = [];

        public List<VmId> Placed { get; } = [];

        public void OnVmCreated(VmRecord vm) => throw new InvalidOperationException("VmService calls OnVmPlaced for a VM created placed.");

        public void OnVmPlaced(VmRecord vm)
        {
            StoredWhenCalled.Add(store.GetVm(vm.Id) is not null);
            if (fail)
            {
                throw new InvalidOperationException("billing store unavailable");
            }

            Placed.Add(vm.Id);
        }
    }

    private sealed class FixedUptime(Dictionary<NodeId, decimal> uptimes) : INodeUptimeSource
    {
        public List<TimeSpan> Windows { get; } = [];

        public decimal? GetUptime(NodeId node, DateTimeOffset from, DateTimeOffset to)
        {
            Windows.Add(to - from);
            return uptimes.TryGetValue(node, out var u) ? u : null;
        }
    }
}
