using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Lifecycle;

public sealed class VmEffectRunnerTests : IDisposable
{
    private readonly TempDatabase _db = new();
    private readonly FakeTimeProvider _time = new(TestData.Start);

    public void Dispose() => _db.Dispose();

    private static readonly VmEffectRunnerOptions Fast = new() { InitialBackoff = TimeSpan.FromSeconds(1), MaxBackoff = TimeSpan.FromSeconds(8), MaxAttempts = 5 };

    private (VmLifecycle Lifecycle, VmEffectRunner Runner, CrashingVmStore Store) CreateSut(VmEffectRegistry effects, VmEffectRunnerOptions? options = null)
    {
        var store = new CrashingVmStore(new SqliteVmStore(_db.Open()));
        return (new VmLifecycle(store, effects, _time), new VmEffectRunner(store, effects, options ?? Fast, _time), store);
    }

    private static async Task<VmId> CreateRunningVmAsync(VmLifecycle lifecycle)
    {
        var id = VmId.New();
        await lifecycle.CreateAsync(id, TestData.Spec()).Within();
        await lifecycle.TransitionAsync(id, VmState.Scheduled, VmTransitionCause.Scheduler, node: TestData.Node(1)).Within();
        await lifecycle.TransitionAsync(id, VmState.Provisioning, VmTransitionCause.CommandAcknowledged).Within();
        await lifecycle.TransitionAsync(id, VmState.Running, VmTransitionCause.Heartbeat).Within();
        return id;
    }

    [Fact]
    public async Task RunDueAsync_EffectSucceeds_MarkedDoneAndNeverRunAgain()
    {
        var ledger = new LedgerEffect(_db.Open());
        var effects = new VmEffectRegistry().Register(ledger).OnEnter(VmState.Running, "ledger");
        var (lifecycle, runner, store) = CreateSut(effects);
        var id = await CreateRunningVmAsync(lifecycle);

        Assert.Equal(1, await runner.RunDueAsync().Within());
        Assert.Equal(0, await runner.RunDueAsync().Within());

        var entry = Assert.Single(await store.GetEffectsAsync(id).Within());
        Assert.Equal(VmEffectStatus.Done, entry.Status);
        Assert.Equal($"{id}/4/ledger", entry.Id);
        Assert.Equal(VmState.Provisioning, entry.Transition.From);
        Assert.Equal(1, ledger.Invocations[entry.Id]);
        Assert.Equal([entry.Id], ledger.AppliedKeys());
    }

    [Fact]
    public async Task RunDueAsync_EffectFails_RetriedWithExponentialBackoffOnTimeProvider()
    {
        var ledger = new LedgerEffect(_db.Open()) { FailWhen = c => c.Attempt <= 2 };
        var effects = new VmEffectRegistry().Register(ledger).OnCreate("ledger");
        var (lifecycle, runner, store) = CreateSut(effects);
        var id = VmId.New();
        await lifecycle.CreateAsync(id, TestData.Spec()).Within();

        Assert.Equal(1, await runner.RunDueAsync().Within()); // attempt 1 fails, retry in 1 s
        var afterFirst = Assert.Single(await store.GetEffectsAsync(id).Within());
        Assert.Equal(TestData.Start.AddSeconds(1), afterFirst.NextAttemptAt);
        Assert.Contains("failed on purpose", afterFirst.LastError, StringComparison.Ordinal);
        _time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Equal(0, await runner.RunDueAsync().Within());
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, await runner.RunDueAsync().Within()); // attempt 2 fails, retry in 2 s
        _time.Advance(TimeSpan.FromSeconds(1.5));
        Assert.Equal(0, await runner.RunDueAsync().Within());
        _time.Advance(TimeSpan.FromSeconds(0.5));
        Assert.Equal(1, await runner.RunDueAsync().Within()); // attempt 3 succeeds

        var entry = Assert.Single(await store.GetEffectsAsync(id).Within());
        Assert.Equal(VmEffectStatus.Done, entry.Status);
        Assert.Equal(3, entry.Attempts);
        Assert.Null(entry.LastError);
        Assert.Single(ledger.AppliedKeys());
    }

    [Fact]
    public async Task RunDueAsync_OneEffectThrows_OthersStillRunAndComplete()
    {
        var good = new LedgerEffect(_db.Open(), "good");
        var bad = new LedgerEffect(_db.Open(), "bad") { FailWhen = _ => true };
        var effects = new VmEffectRegistry().Register(bad).Register(good).OnCreate("bad").OnCreate("good");
        var (lifecycle, runner, store) = CreateSut(effects);
        var id = VmId.New();
        await lifecycle.CreateAsync(id, TestData.Spec()).Within();

        Assert.Equal(2, await runner.RunDueAsync().Within());

        var byName = (await store.GetEffectsAsync(id).Within()).ToDictionary(e => e.Effect);
        Assert.Equal(VmEffectStatus.Done, byName["good"].Status);
        Assert.Equal(VmEffectStatus.Pending, byName["bad"].Status);
        Assert.Equal(1, byName["bad"].Attempts);
    }

    [Fact]
    public async Task RunDueAsync_MaxAttemptsReached_MarkedFailedUntilRequeued()
    {
        var ledger = new LedgerEffect(_db.Open()) { FailWhen = _ => true };
        var effects = new VmEffectRegistry().Register(ledger).OnCreate("ledger");
        var (lifecycle, runner, store) = CreateSut(effects, new VmEffectRunnerOptions { InitialBackoff = TimeSpan.FromSeconds(1), MaxBackoff = TimeSpan.FromSeconds(1), MaxAttempts = 3 });
        var id = VmId.New();
        await lifecycle.CreateAsync(id, TestData.Spec()).Within();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(1, await runner.RunDueAsync().Within());
            _time.Advance(TimeSpan.FromSeconds(1));
        }

        var failed = Assert.Single(await store.GetEffectsAsync(id).Within());
        Assert.Equal(VmEffectStatus.Failed, failed.Status);
        Assert.Equal(0, await runner.RunDueAsync().Within());

        ledger.FailWhen = _ => false;
        Assert.True(await store.RequeueEffectAsync(failed.Id, _time.GetUtcNow()).Within());
        Assert.False(await store.RequeueEffectAsync(failed.Id, _time.GetUtcNow()).Within());
        Assert.Equal(1, await runner.RunDueAsync().Within());
        Assert.Equal(VmEffectStatus.Done, Assert.Single(await store.GetEffectsAsync(id).Within()).Status);
    }

    [Fact]
    public async Task RunDueAsync_NoHandlerRegistered_RecordsFailureNamingTheEffect()
    {
        var effects = new VmEffectRegistry().OnCreate("missing-handler");
        var (lifecycle, runner, store) = CreateSut(effects);
        var id = VmId.New();
        await lifecycle.CreateAsync(id, TestData.Spec()).Within();

        await runner.RunDueAsync().Within();

        var entry = Assert.Single(await store.GetEffectsAsync(id).Within());
        Assert.Equal(VmEffectStatus.Pending, entry.Status);
        Assert.Contains("'missing-handler'", entry.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunDueAsync_EffectHangs_TimesOutOnTimeProviderAndRetries()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var effects = new VmEffectRegistry()
            .Register("hang", async (_, ct) =>
            {
                started.TrySetResult();
                await Task.Delay(Timeout.InfiniteTimeSpan, ct);
            })
            .OnCreate("hang");
        var (lifecycle, runner, store) = CreateSut(effects, new VmEffectRunnerOptions { EffectTimeout = TimeSpan.FromSeconds(10) });
        var id = VmId.New();
        await lifecycle.CreateAsync(id, TestData.Spec()).Within();

        var round = runner.RunDueAsync();
        await started.Task.Within();
        _time.Advance(TimeSpan.FromSeconds(10));
        await round.Within();

        var entry = Assert.Single(await store.GetEffectsAsync(id).Within());
        Assert.Equal(VmEffectStatus.Pending, entry.Status);
        Assert.Contains("TimeoutException", entry.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Restart_TransitionStoredButEffectNeverRan_EffectRunsAfterRestart()
    {
        var ledger = new LedgerEffect(_db.Open());
        var id = VmId.New();
        {
            var effects = new VmEffectRegistry().Register(ledger).OnCreate("ledger");
            var (lifecycle, _, _) = CreateSut(effects);
            await lifecycle.CreateAsync(id, TestData.Spec()).Within();
            // The process dies here: the transition and its effect are stored, nothing ran.
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var restarted = new VmEffectRegistry().Register(ledger).OnCreate("ledger");
        var (_, runner, store) = CreateSut(restarted);

        Assert.Equal(1, await runner.RunDueAsync().Within());
        Assert.Equal(VmEffectStatus.Done, Assert.Single(await store.GetEffectsAsync(id).Within()).Status);
        Assert.Equal([$"{id}/1/ledger"], ledger.AppliedKeys());
    }

    [Fact]
    public async Task Restart_CrashAfterEffectBeforeMarkedDone_RerunsWithSameKeyAndAppliesOnce()
    {
        var ledger = new LedgerEffect(_db.Open());
        var id = VmId.New();
        {
            var effects = new VmEffectRegistry().Register(ledger).OnCreate("ledger");
            var (lifecycle, runner, store) = CreateSut(effects);
            await lifecycle.CreateAsync(id, TestData.Spec()).Within();
            store.CrashBeforeComplete = _ => true;
            await Assert.ThrowsAsync<SimulatedCrashException>(() => runner.RunDueAsync());
        }

        var restarted = new VmEffectRegistry().Register(ledger).OnCreate("ledger");
        var (_, runner2, store2) = CreateSut(restarted);
        Assert.Equal(1, await runner2.RunDueAsync().Within());

        var key = $"{id}/1/ledger";
        Assert.Equal(2, ledger.Invocations[key]); // at-least-once at the boundary ...
        Assert.Equal([key], ledger.AppliedKeys()); // ... applied once thanks to the idempotency key
        Assert.Equal(VmEffectStatus.Done, Assert.Single(await store2.GetEffectsAsync(id).Within()).Status);
    }

    [Fact]
    public async Task StartAsync_TransitionQueuesEffect_LoopRunsItWithoutPolling()
    {
        var ran = new TaskCompletionSource<VmEffectContext>(TaskCreationOptions.RunContinuationsAsynchronously);
        var effects = new VmEffectRegistry()
            .Register("notify", (c, _) =>
            {
                ran.TrySetResult(c);
                return ValueTask.CompletedTask;
            })
            .On(VmState.Running, VmState.Stopping, "notify");
        var store = new SqliteVmStore(_db.Open());
        var lifecycle = new VmLifecycle(store, effects);
        await using var runner = new VmEffectRunner(store, effects, new VmEffectRunnerOptions { PollInterval = TimeSpan.FromHours(1) });
        await runner.StartAsync().Within();
        var id = await CreateRunningVmAsync(lifecycle);

        await lifecycle.TransitionAsync(id, VmState.Stopping, VmTransitionCause.Command).Within();

        var context = await ran.Task.Within();
        Assert.Equal(VmState.Running, context.Transition.From);
        Assert.Equal(VmState.Stopping, context.Transition.To);
        Assert.Equal(TestData.Node(1), context.Transition.Node);
        await runner.StopAsync().Within();
    }

    [Fact]
    public void Register_BadNamesAndTransitions_ThrowNamingField()
    {
        var effects = new VmEffectRegistry();
        Assert.Equal("effect", Assert.Throws<DeCloudValidationException>(() => effects.Register("Bad Name", (_, _) => ValueTask.CompletedTask)).Field);
        Assert.Equal("effect", Assert.Throws<DeCloudValidationException>(() => effects.OnCreate(new string('a', 65))).Field);
        Assert.Equal("transition", Assert.Throws<DeCloudValidationException>(() => effects.On(VmState.Running, VmState.Pending, "x")).Field);
        effects.Register("x", (_, _) => ValueTask.CompletedTask);
        Assert.Equal("effect", Assert.Throws<DeCloudValidationException>(() => effects.Register("x", (_, _) => ValueTask.CompletedTask)).Field);
    }

    [Fact]
    public void EffectsFor_EnterExitAndSpecificRules_CombineWithoutDuplicates()
    {
        var effects = new VmEffectRegistry()
            .OnEnter(VmState.Deleting, "release")
            .OnExit(VmState.Running, "stop-billing")
            .On(VmState.Running, VmState.Deleting, "release")
            .On(VmState.Running, VmState.Deleting, "notify")
            .OnCreate("reserve");

        Assert.Equal(["release", "stop-billing", "notify"], effects.EffectsFor(VmState.Running, VmState.Deleting));
        Assert.Equal(["release"], effects.EffectsFor(VmState.Stopped, VmState.Deleting));
        Assert.Equal(["reserve"], effects.EffectsFor(null, VmState.Pending));
        Assert.Empty(effects.EffectsFor(VmState.Failed, VmState.Pending));
    }

    [Fact]
    public void Options_BadValues_ThrowNamingProperty()
    {
        Assert.Equal("VmEffectRunnerOptions.MaxAttempts", Assert.Throws<DeCloudValidationException>(() => new VmEffectRunnerOptions { MaxAttempts = 0 }.Validate()).Field);
        Assert.Equal("VmEffectRunnerOptions.MaxBackoff", Assert.Throws<DeCloudValidationException>(() => new VmEffectRunnerOptions { MaxBackoff = TimeSpan.FromMilliseconds(1) }.Validate()).Field);
        Assert.Equal("VmEffectRunnerOptions.InitialBackoff", Assert.Throws<DeCloudValidationException>(() => new VmEffectRunnerOptions { InitialBackoff = TimeSpan.Zero }.Validate()).Field);
        Assert.Equal(TimeSpan.FromSeconds(4), new VmEffectRunnerOptions().BackoffAfter(3));
        Assert.Equal(TimeSpan.FromMinutes(5), new VmEffectRunnerOptions().BackoffAfter(100));
    }
}
