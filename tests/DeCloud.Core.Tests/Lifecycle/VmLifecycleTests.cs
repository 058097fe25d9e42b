using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Lifecycle;

public sealed class VmLifecycleTests : IDisposable
{
    private readonly TempDatabase _db = new();
    private readonly FakeTimeProvider _time = new(TestData.Start);
    private readonly VmEffectRegistry _effects = new();

    public void Dispose() => _db.Dispose();

    private VmLifecycle CreateSut() => new(new SqliteVmStore(_db.Open()), _effects, _time);

    [Fact]
    public async Task CreateAsync_ValidSpec_StoresPendingWithCreationEffect()
    {
        _effects.Register("reserve-quota", (_, _) => ValueTask.CompletedTask).OnCreate("reserve-quota");
        var sut = CreateSut();
        var id = VmId.New();

        var result = await sut.CreateAsync(id, TestData.Spec()).Within();

        Assert.Equal(VmState.Pending, result.Vm.State);
        Assert.Equal(1, result.Vm.Version);
        Assert.Equal([$"{id}/1/reserve-quota"], result.EffectIds);
        var stored = await sut.GetAsync(id).Within();
        Assert.Equal(result.Vm, stored);
        var history = await sut.GetHistoryAsync(id).Within();
        Assert.Null(Assert.Single(history).From);
    }

    [Fact]
    public async Task TransitionAsync_ValidPath_StoresEachStepWithNodeAndCause()
    {
        var sut = CreateSut();
        var id = VmId.New();
        var node = TestData.Node(1);
        await sut.CreateAsync(id, TestData.Spec()).Within();

        await sut.TransitionAsync(id, VmState.Scheduled, VmTransitionCause.Scheduler, "placed", node).Within();
        await sut.TransitionAsync(id, VmState.Provisioning, VmTransitionCause.CommandAcknowledged).Within();
        _time.Advance(TimeSpan.FromSeconds(20));
        var running = await sut.TransitionAsync(id, VmState.Running, VmTransitionCause.Heartbeat).Within();

        Assert.Equal(VmState.Running, running.Vm.State);
        Assert.Equal(node, running.Vm.Node);
        Assert.Equal(4, running.Vm.Version);
        Assert.Equal(TestData.Start.AddSeconds(20), running.Vm.UpdatedAt);
        var history = await sut.GetHistoryAsync(id).Within();
        Assert.Equal([null, VmState.Pending, VmState.Scheduled, VmState.Provisioning], history.Select(h => h.From));
        Assert.Equal([VmState.Pending, VmState.Scheduled, VmState.Provisioning, VmState.Running], history.Select(h => h.To));
        Assert.Equal(VmTransitionCause.Heartbeat, history[^1].Cause);
        Assert.Equal("placed", history[1].Reason);
    }

    [Fact]
    public async Task TransitionAsync_InvalidTransition_ThrowsNamingBothStatesAndStoresNothing()
    {
        _effects.Register("start-vm", (_, _) => ValueTask.CompletedTask).OnEnter(VmState.Running, "start-vm");
        var sut = CreateSut();
        var id = VmId.New();
        await sut.CreateAsync(id, TestData.Spec()).Within();

        var ex = await Assert.ThrowsAsync<VmTransitionException>(() => sut.TransitionAsync(id, VmState.Running, VmTransitionCause.Command));

        Assert.Equal(VmState.Pending, ex.From);
        Assert.Equal(VmState.Running, ex.To);
        Assert.Contains("from Pending to Running", ex.Message, StringComparison.Ordinal);
        Assert.Equal(1, (await sut.GetAsync(id).Within())!.Version);
        Assert.Single(await sut.GetHistoryAsync(id).Within());
        Assert.Empty(await sut.Store.GetEffectsAsync(id).Within());
    }

    [Fact]
    public async Task TransitionAsync_SameState_ReturnsUnchangedAndStoresNothing()
    {
        var sut = CreateSut();
        var id = VmId.New();
        await sut.CreateAsync(id, TestData.Spec()).Within();

        var result = await sut.TransitionAsync(id, VmState.Pending, VmTransitionCause.Heartbeat).Within();

        Assert.False(result.Changed);
        Assert.Single(await sut.GetHistoryAsync(id).Within());
    }

    [Fact]
    public async Task TransitionAsync_FromDeleted_RefusedAsTerminal()
    {
        var sut = CreateSut();
        var id = VmId.New();
        await sut.CreateAsync(id, TestData.Spec()).Within();
        await sut.TransitionAsync(id, VmState.Deleted, VmTransitionCause.Command).Within();

        var ex = await Assert.ThrowsAsync<VmTransitionException>(() => sut.TransitionAsync(id, VmState.Pending, VmTransitionCause.Manual));

        Assert.Contains("terminal", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TransitionAsync_ScheduledWithoutNode_ThrowsNamingNode()
    {
        var sut = CreateSut();
        var id = VmId.New();
        await sut.CreateAsync(id, TestData.Spec()).Within();

        var ex = await Assert.ThrowsAsync<DeCloudValidationException>(() => sut.TransitionAsync(id, VmState.Scheduled, VmTransitionCause.Scheduler));

        Assert.Equal("node", ex.Field);
        Assert.Equal(VmState.Pending, (await sut.GetAsync(id).Within())!.State);
    }

    [Fact]
    public async Task TransitionAsync_NodeOnOrdinaryTransition_ThrowsNamingNode()
    {
        var sut = CreateSut();
        var id = VmId.New();
        await sut.CreateAsync(id, TestData.Spec()).Within();
        await sut.TransitionAsync(id, VmState.Scheduled, VmTransitionCause.Scheduler, node: TestData.Node(1)).Within();

        var ex = await Assert.ThrowsAsync<DeCloudValidationException>(
            () => sut.TransitionAsync(id, VmState.Provisioning, VmTransitionCause.Command, node: TestData.Node(2)));

        Assert.Equal("node", ex.Field);
    }

    [Fact]
    public async Task TransitionAsync_BackToPending_ClearsNodeAndKeepsPreviousInHistory()
    {
        var sut = CreateSut();
        var id = VmId.New();
        await sut.CreateAsync(id, TestData.Spec()).Within();
        await sut.TransitionAsync(id, VmState.Scheduled, VmTransitionCause.Scheduler, node: TestData.Node(1)).Within();

        var result = await sut.TransitionAsync(id, VmState.Pending, VmTransitionCause.Timeout, "agent did not acknowledge").Within();

        Assert.Null(result.Vm.Node);
        Assert.Equal(TestData.Node(1), (await sut.GetHistoryAsync(id).Within())[^1].PreviousNode);
    }

    [Fact]
    public async Task TransitionAsync_UnknownVm_ThrowsNotFound()
    {
        var ex = await Assert.ThrowsAsync<DeCloudNotFoundException>(() => CreateSut().TransitionAsync(VmId.New(), VmState.Scheduled, VmTransitionCause.Command));
        Assert.Equal("vmId", ex.Field);
    }

    [Fact]
    public async Task TransitionAsync_UndefinedStateOrCause_ThrowsNamingField()
    {
        var sut = CreateSut();
        var id = VmId.New();
        await sut.CreateAsync(id, TestData.Spec()).Within();

        Assert.Equal("to", (await Assert.ThrowsAsync<DeCloudValidationException>(() => sut.TransitionAsync(id, (VmState)42, VmTransitionCause.Command))).Field);
        Assert.Equal("cause", (await Assert.ThrowsAsync<DeCloudValidationException>(() => sut.TransitionAsync(id, VmState.Failed, (VmTransitionCause)42))).Field);
        Assert.Equal("reason", (await Assert.ThrowsAsync<DeCloudValidationException>(() => sut.TransitionAsync(id, VmState.Failed, VmTransitionCause.Command, new string('x', 1001)))).Field);
    }

    public static TheoryData<string, VmSpec> BadSpecs => new()
    {
        { "owner", new VmSpec(default, new Resources(1, 1024, 10)) },
        { "resources.computePoints", new VmSpec(TestData.Wallet, new Resources(0, 1024, 10)) },
        { "resources.memoryMiB", new VmSpec(TestData.Wallet, new Resources(1, -5, 10)) },
        { "resources.storageGiB", new VmSpec(TestData.Wallet, new Resources(1, 1024, long.MaxValue)) },
        { "resources.gpus", new VmSpec(TestData.Wallet, new Resources(1, 1024, 10, 1000)) },
        { "qualityTier", new VmSpec(TestData.Wallet, new Resources(1, 1024, 10), (QualityTier)9) },
        { "bandwidthTier", new VmSpec(TestData.Wallet, new Resources(1, 1024, 10), QualityTier.Standard, (BandwidthTier)9) },
        { "architecture", new VmSpec(TestData.Wallet, new Resources(1, 1024, 10), QualityTier.Standard, BandwidthTier.Basic, (CpuArchitecture)9) },
    };

    [Theory]
    [MemberData(nameof(BadSpecs))]
    public async Task CreateAsync_BadSpec_ThrowsNamingFieldAndStoresNothing(string field, VmSpec spec)
    {
        var sut = CreateSut();

        var ex = await Assert.ThrowsAsync<DeCloudValidationException>(() => sut.CreateAsync(VmId.New(), spec));

        Assert.Equal(field, ex.Field);
        Assert.Equal(0, _db.Scalar("SELECT COUNT(*) FROM vms;"));
    }

    [Fact]
    public async Task CreateAsync_DuplicateOrEmptyId_ThrowsNamingVmId()
    {
        var sut = CreateSut();
        var id = VmId.New();
        await sut.CreateAsync(id, TestData.Spec()).Within();

        Assert.Equal("vmId", (await Assert.ThrowsAsync<DeCloudValidationException>(() => sut.CreateAsync(id, TestData.Spec(4)))).Field);
        Assert.Equal("vmId", (await Assert.ThrowsAsync<DeCloudValidationException>(() => sut.CreateAsync(default, TestData.Spec()))).Field);
        Assert.Equal(2, (await sut.GetAsync(id).Within())!.Spec.Resources.ComputePoints);
    }

    [Fact]
    public async Task TransitionAsync_ConcurrentSameTransition_StoredExactlyOnce()
    {
        _effects.Register("stop-vm", (_, _) => ValueTask.CompletedTask).On(VmState.Running, VmState.Stopping, "stop-vm");
        var sut = CreateSut();
        var id = VmId.New();
        await sut.CreateAsync(id, TestData.Spec()).Within();
        await sut.TransitionAsync(id, VmState.Scheduled, VmTransitionCause.Scheduler, node: TestData.Node(1)).Within();
        await sut.TransitionAsync(id, VmState.Provisioning, VmTransitionCause.Command).Within();
        await sut.TransitionAsync(id, VmState.Running, VmTransitionCause.Heartbeat).Within();

        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(() => sut.TransitionAsync(id, VmState.Stopping, VmTransitionCause.Command)))).Within();

        Assert.Equal(1, results.Count(r => r.Changed));
        Assert.Single(await sut.Store.GetEffectsAsync(id).Within());
        Assert.Equal(5, (await sut.GetAsync(id).Within())!.Version);
    }
}
