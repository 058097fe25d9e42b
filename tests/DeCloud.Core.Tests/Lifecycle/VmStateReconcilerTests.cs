using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Lifecycle;

public sealed class VmStateReconcilerTests : IDisposable
{
    private readonly ControlPlaneDatabase _db = new();
    private readonly VmLifecycle _lifecycle;

    public VmStateReconcilerTests() => _lifecycle = new VmLifecycle(new SqliteVmStore(_db.Open()), new VmEffectRegistry(), new FakeTimeProvider(ControlPlaneData.Start));

    public void Dispose() => _db.Dispose();

    private VmStateReconciler CreateSut() => new(_lifecycle);

    private async Task<VmId> VmAsync(int node, params VmState[] path)
    {
        var id = VmId.New();
        await _lifecycle.CreateAsync(id, ControlPlaneData.Spec()).Within();
        await _lifecycle.TransitionAsync(id, VmState.Scheduled, VmTransitionCause.Scheduler, node: ControlPlaneData.Node(node)).Within();
        foreach (var s in path)
        {
            await _lifecycle.TransitionAsync(id, s, VmTransitionCause.Command).Within();
        }

        return id;
    }

    [Fact]
    public async Task ApplyHeartbeatAsync_Reports_AppliesAllowedIgnoresRestAndListsOrphans()
    {
        var provisioning = await VmAsync(1, VmState.Provisioning);
        var running = await VmAsync(1, VmState.Provisioning, VmState.Running);
        var deleting = await VmAsync(1, VmState.Provisioning, VmState.Running, VmState.Deleting);
        var elsewhere = await VmAsync(2, VmState.Provisioning);
        var orphan = VmId.New();

        var result = await CreateSut().ApplyHeartbeatAsync(new NodeHeartbeat(ControlPlaneData.Node(1), new Resources(4, 4096, 40),
        [
            new VmStatusReport(provisioning, VmState.Running),
            new VmStatusReport(running, VmState.Running),
            new VmStatusReport(deleting, VmState.Running),
            new VmStatusReport(elsewhere, VmState.Running),
            new VmStatusReport(orphan, VmState.Running),
        ])).Within();

        Assert.Equal(provisioning, Assert.Single(result.Applied).Vm.Id);
        Assert.Equal(VmState.Running, (await _lifecycle.GetAsync(provisioning).Within())!.State);
        Assert.Equal(VmTransitionCause.Heartbeat, (await _lifecycle.GetHistoryAsync(provisioning).Within())[^1].Cause);
        Assert.Equal(1, result.Unchanged);
        Assert.Equal(deleting, Assert.Single(result.Ignored).VmId);
        Assert.Equal(VmState.Deleting, (await _lifecycle.GetAsync(deleting).Within())!.State);
        Assert.Equal([elsewhere, orphan], result.Unknown);
    }

    [Fact]
    public async Task MarkNodeUnreachableAsync_NodeOffline_LiveVmsUnreachableThenBackOnReport()
    {
        var running = await VmAsync(1, VmState.Provisioning, VmState.Running);
        var stopped = await VmAsync(1, VmState.Provisioning, VmState.Running, VmState.Stopped);
        var deleting = await VmAsync(1, VmState.Provisioning, VmState.Running, VmState.Deleting);
        var other = await VmAsync(2, VmState.Provisioning, VmState.Running);
        var sut = CreateSut();

        var marked = await sut.MarkNodeUnreachableAsync(ControlPlaneData.Node(1)).Within();

        Assert.Equal(new[] { running, stopped }.OrderBy(v => v.Value), marked.Select(m => m.Vm.Id).OrderBy(v => v.Value));
        Assert.Equal(VmState.Deleting, (await _lifecycle.GetAsync(deleting).Within())!.State);
        Assert.Equal(VmState.Running, (await _lifecycle.GetAsync(other).Within())!.State);

        await sut.ApplyHeartbeatAsync(new NodeHeartbeat(ControlPlaneData.Node(1), new Resources(2, 2048, 20), [new VmStatusReport(running, VmState.Running)])).Within();
        Assert.Equal(VmState.Running, (await _lifecycle.GetAsync(running).Within())!.State);
        Assert.Equal(VmState.Unreachable, (await _lifecycle.GetAsync(stopped).Within())!.State);
    }

    [Fact]
    public async Task ApplyHeartbeatAsync_MalformedReport_ThrowsNamingFieldAndChangesNothing()
    {
        var vm = await VmAsync(1, VmState.Provisioning);

        var ex = await Assert.ThrowsAsync<DeCloudValidationException>(() => CreateSut().ApplyHeartbeatAsync(
            new NodeHeartbeat(ControlPlaneData.Node(1), new Resources(1, 1, 1), [new VmStatusReport(vm, VmState.Running), new VmStatusReport(vm, VmState.Stopped)])));

        Assert.Equal("vms[1].vmId", ex.Field);
        Assert.Equal(VmState.Provisioning, (await _lifecycle.GetAsync(vm).Within())!.State);
    }
}
