using CsCheck;
using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Core.Tests.Lifecycle;

/// <summary>
/// Random sequences of transitions (valid and invalid), effect rounds with injected crashes between an
/// effect and its "done" mark, and restarts, against a real SQLite file.
/// </summary>
public sealed class VmLifecyclePropertyTests
{
    private const int Vms = 3;

    // (kind: 0-6 transition, 7-8 run effects, 9 restart; vm; target state; crash during the effect round)
    private static readonly Gen<(int Kind, int Vm, int Target, bool Crash)[]> Operations =
        Gen.Select(Gen.Int[0, 9], Gen.Int[0, Vms - 1], Gen.Int[0, 11], Gen.Bool).Array[1, 40];

    [Fact]
    public async Task Lifecycle_RandomOperationsWithCrashes_NoInvalidTransitionStoredAndEveryEffectAppliedExactlyOnce()
    {
        await Operations.SampleAsync(RunScenarioAsync, iter: 40, threads: 1);
    }

    private static async Task RunScenarioAsync((int Kind, int Vm, int Target, bool Crash)[] operations)
    {
        using var db = new ControlPlaneDatabase();
        var time = new FakeTimeProvider(ControlPlaneData.Start);
        var enter = new LedgerEffect(db.Open(), "enter");
        var exitRunning = new LedgerEffect(db.Open(), "exit-running");
        // The runner executes up to two effects at once, so the crash hook is called concurrently.
        var crashGate = new Lock();
        var crashes = new Dictionary<string, int>(StringComparer.Ordinal);
        var crashed = new HashSet<string>(StringComparer.Ordinal);

        VmEffectRegistry NewRegistry()
        {
            var r = new VmEffectRegistry().Register(enter).Register(exitRunning).OnExit(VmState.Running, "exit-running");
            foreach (var s in VmTransitionTable.States)
            {
                r.OnEnter(s, "enter");
            }

            return r;
        }

        // "Start the process": fresh objects over the same file.
        (VmLifecycle Lifecycle, VmEffectRunner Runner, CrashingVmStore Store) Start()
        {
            var registry = NewRegistry();
            var store = new CrashingVmStore(new SqliteVmStore(db.Open()));
            return (new VmLifecycle(store, registry, time), new VmEffectRunner(store, registry, new VmEffectRunnerOptions { MaxConcurrency = 2 }, time), store);
        }

        var process = Start();
        // Fixed ids and a stable hash below, so a failing seed reproduces the same crashes.
        var ids = Enumerable.Range(0, Vms).Select(i => new VmId(new Guid(i + 1, 0, 0, new byte[8]))).ToArray();
        var model = new VmState[Vms];
        var versions = new long[Vms];
        for (var i = 0; i < Vms; i++)
        {
            await process.Lifecycle.CreateAsync(ids[i], ControlPlaneData.Spec());
            model[i] = VmState.Pending;
            versions[i] = 1;
        }

        foreach (var (kind, vm, target, crash) in operations)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            if (kind <= 6)
            {
                var to = (VmState)target;
                NodeId? node = to is VmState.Scheduled or VmState.Migrating ? ControlPlaneData.Node(target + vm) : null;
                if (to == model[vm])
                {
                    var same = await process.Lifecycle.TransitionAsync(ids[vm], to, VmTransitionCause.Command, node: node is null ? null : (await process.Lifecycle.GetAsync(ids[vm]))!.Node);
                    Assert.False(same.Changed);
                }
                else if (VmTransitionTable.IsAllowed(model[vm], to))
                {
                    var result = await process.Lifecycle.TransitionAsync(ids[vm], to, VmTransitionCause.Command, node: node);
                    Assert.True(result.Changed);
                    model[vm] = to;
                    versions[vm]++;
                }
                else
                {
                    var ex = await Assert.ThrowsAsync<VmTransitionException>(() => process.Lifecycle.TransitionAsync(ids[vm], to, VmTransitionCause.Command, node: node));
                    Assert.Equal(model[vm], ex.From);
                }

                Assert.Equal(versions[vm], (await process.Lifecycle.GetAsync(ids[vm]))!.Version);
            }
            else if (kind <= 8)
            {
                process.Store.CrashBeforeComplete = key =>
                {
                    lock (crashGate)
                    {
                        if (!crash || crashed.Contains(key) || (StableHash(key) & 1) == 0)
                        {
                            return false;
                        }

                        crashed.Add(key);
                        crashes[key] = crashes.GetValueOrDefault(key) + 1;
                        return true;
                    }
                };
                try
                {
                    await process.Runner.RunDueAsync();
                }
                catch (SimulatedCrashException)
                {
                    process = Start();
                }
            }
            else
            {
                process = Start();
            }
        }

        // Recovery: a last restart, then run until nothing is due.
        process = Start();
        while (await process.Runner.RunDueAsync() > 0)
        {
        }

        var registry = NewRegistry();
        var expectedKeys = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < Vms; i++)
        {
            var history = await process.Lifecycle.GetHistoryAsync(ids[i]);
            Assert.Equal(versions[i], history.Count);
            Assert.Null(history[0].From);
            for (var h = 1; h < history.Count; h++)
            {
                Assert.Equal(history[h - 1].To, history[h].From);
                Assert.True(VmTransitionTable.IsAllowed(history[h].From!.Value, history[h].To), $"stored invalid {history[h].From} -> {history[h].To}");
                Assert.Equal(h + 1, history[h].Sequence);
            }

            Assert.Equal(model[i], history[^1].To);
            foreach (var t in history)
            {
                foreach (var e in registry.EffectsFor(t.From, t.To))
                {
                    expectedKeys.Add(VmEffectEntry.MakeId(ids[i], t.Sequence, e));
                }
            }

            Assert.All(await process.Store.GetEffectsAsync(ids[i]), e => Assert.Equal(VmEffectStatus.Done, e.Status));
        }

        var applied = enter.AppliedKeys();
        applied.UnionWith(exitRunning.AppliedKeys());
        Assert.Equal(expectedKeys.Order(StringComparer.Ordinal), applied.Order(StringComparer.Ordinal));
        foreach (var key in expectedKeys)
        {
            var invocations = enter.Invocations.GetValueOrDefault(key) + exitRunning.Invocations.GetValueOrDefault(key);
            Assert.Equal(1 + crashes.GetValueOrDefault(key), invocations);
        }
    }

    private static int StableHash(string key)
    {
        var h = 0;
        foreach (var c in key)
        {
            h = unchecked((h * 31) + c);
        }

        return h;
    }
}
