using System.Globalization;
using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Core.Sqlite;
using Microsoft.Data.Sqlite;

// DeCloud control plane demo: SQLite in a temp folder, real time with short intervals.
// Usage: ControlPlaneDemo [--offline-after <seconds>] [--keep]
var offlineAfter = TimeSpan.FromSeconds(ArgValue("--offline-after", 3));
var keep = args.Contains("--keep");
var dir = Directory.CreateTempSubdirectory("decloud-demo-").FullName;
var dbPath = Path.Combine(dir, "control-plane.db");
var options = new NodeRegistryOptions
{
    HeartbeatInterval = TimeSpan.FromSeconds(1),
    OfflineAfter = offlineAfter,
    CheckInterval = TimeSpan.FromMilliseconds(250),
};
var wallet = WalletAddress.Parse("0x52908400098527886e0f7030069857d2e4169ee7");

Say($"database: {dbPath}");
Say($"heartbeat every {options.HeartbeatInterval.TotalSeconds} s, offline after {options.OfflineAfter.TotalSeconds} s without one");

var db = new SqliteDatabase(dbPath);
var registry = new NodeRegistry(new SqliteNodeStore(db), options, observers: [new PrintingObserver()]);
var monitor = new NodeHealthMonitor(registry);
await monitor.StartAsync();

// --- Nodes -------------------------------------------------------------------------------
NodeRegistration Node(int i, string region, string[] tags, decimal price, double score, bool nat, string[]? gpus = null) => new(
    NodeId.FromMachine($"demo-machine-{i}", wallet), wallet, new NodeHardware(8, "AMD EPYC 7443P", score, 32768, 500, gpus),
    CpuArchitecture.X86_64, region, tags, $"demo node {i}", new NodePricing(price, 0.002m, 0.0001m),
    nat ? NodeConnectivity.BehindNat : NodeConnectivity.Public, nat ? null : $"203.0.113.{i}:7443", "1.0.0");

var nodes = new[]
{
    Node(1, "eu-west", ["ssd", "nvme"], 0.012m, 16000, nat: false),
    Node(2, "eu-west", ["ssd"], 0.008m, 8000, nat: true),
    Node(3, "us-east", ["ssd", "gpu"], 0.020m, 32000, nat: false, ["nvidia-a100"]),
    Node(4, "eu-west", ["ssd"], 0.005m, 8000, nat: true),
};
foreach (var n in nodes)
{
    await registry.RegisterAsync(n);
}

try
{
    await registry.RegisterAsync(Node(5, "eu west", ["ssd"], 0.01m, 1000, nat: true));
}
catch (DeCloudValidationException ex)
{
    Say($"refused a bad registration: {ex.Message}");
}

// Heartbeats: nodes 1-3 all the time; node 4 stays silent until told otherwise.
var node4Silent = true;
var vmReports = new Dictionary<NodeId, List<VmStatusReport>>();
using var stopBeats = new CancellationTokenSource();
var beats = Task.Run(async () =>
{
    while (!stopBeats.IsCancellationRequested)
    {
        foreach (var n in nodes)
        {
            if (n.NodeId == nodes[3].NodeId && node4Silent)
            {
                continue;
            }

            List<VmStatusReport> vms;
            lock (vmReports)
            {
                vms = vmReports.TryGetValue(n.NodeId, out var list) ? [.. list] : [];
            }

            await registry.RecordHeartbeatAsync(new NodeHeartbeat(n.NodeId, new Resources(vms.Count * 2, vms.Count * 2048L, vms.Count * 20L), vms));
        }

        await Task.Delay(options.HeartbeatInterval, stopBeats.Token).ContinueWith(_ => { }, TaskScheduler.Default);
    }
});

Say($"waiting for node 4 to be marked offline (> {offlineAfter.TotalSeconds} s without a heartbeat) ...");
await WaitUntil(async () => (await registry.GetAsync(nodes[3].NodeId))!.Status == NodeStatus.Offline, offlineAfter * 4);
node4Silent = false;
await WaitUntil(async () => (await registry.GetAsync(nodes[3].NodeId))!.Status == NodeStatus.Online, TimeSpan.FromSeconds(10));

// --- Reputation and search -----------------------------------------------------------------
foreach (var n in await registry.GetAllAsync())
{
    Say($"node {Short(n.Id)} {n.Registration.Region,-8} {n.Status,-7} uptime {n.Uptime:P2} failed heartbeats {n.FailedHeartbeats} free {n.Free.ComputePoints} points");
}

var cheapEu = await registry.SearchAsync(new NodeSearchQuery { Region = "eu-west", MinFreeComputePoints = 2, MinUptime = 0.9, Sort = NodeSortOrder.Price });
Say($"search eu-west, >= 2 free points, uptime >= 90%, by price: {string.Join(", ", cheapEu.Select(n => $"{Short(n.Id)} ({n.Registration.Pricing.ComputePointHour} USDC/point-h)"))}");
var gpu = await registry.SearchAsync(new NodeSearchQuery { GpuRequired = true });
Say($"search GPU: {string.Join(", ", gpu.Select(n => $"{Short(n.Id)} {n.Capacity.GpuModel}"))}");
var featured = await registry.GetFeaturedAsync();
Say($"featured (online, uptime > 95%): {string.Join(", ", featured.Select(n => $"{Short(n.Id)} {n.Uptime:P1}"))}");

// --- VM lifecycle with effects --------------------------------------------------------------
var effects = new VmEffectRegistry();
var notifyAttempts = 0;
effects
    .Register("allocate-ports", (c, _) =>
    {
        Say($"  effect allocate-ports for VM {Short(c.Transition.VmId)} on {Short(c.Transition.Node!.Value)} (key {c.IdempotencyKey})");
        return ValueTask.CompletedTask;
    })
    .Register("count-hosted", async (c, ct) =>
    {
        var counted = await registry.RecordVmHostedAsync(c.Transition.Node!.Value, c.IdempotencyKey, ct);
        Say($"  effect count-hosted: counted={counted}");
    })
    .Register("notify-owner", (c, _) =>
    {
        if (Interlocked.Increment(ref notifyAttempts) == 1)
        {
            Say($"  effect notify-owner attempt {c.Attempt}: mail server unavailable, will retry with backoff");
            throw new InvalidOperationException("mail server unavailable");
        }

        Say($"  effect notify-owner attempt {c.Attempt}: owner told VM {Short(c.Transition.VmId)} is {c.Transition.To}");
        return ValueTask.CompletedTask;
    })
    .Register("count-completed", async (c, ct) =>
    {
        var counted = await registry.RecordVmCompletedCleanlyAsync(c.Transition.PreviousNode ?? c.Transition.Node!.Value, c.IdempotencyKey, ct);
        Say($"  effect count-completed: counted={counted}");
    })
    .Register("release-resources", (c, _) =>
    {
        Say($"  effect release-resources for VM {Short(c.Transition.VmId)} ({c.Transition.From} -> {c.Transition.To})");
        return ValueTask.CompletedTask;
    })
    .OnEnter(VmState.Running, "allocate-ports")
    .OnEnter(VmState.Running, "count-hosted")
    .OnEnter(VmState.Running, "notify-owner")
    .On(VmState.Stopped, VmState.Deleting, "count-completed")
    .OnEnter(VmState.Deleting, "release-resources");

var vmStore = new SqliteVmStore(db);
var lifecycle = new VmLifecycle(vmStore, effects);
var runner = new VmEffectRunner(vmStore, effects, new VmEffectRunnerOptions { InitialBackoff = TimeSpan.FromMilliseconds(300), MaxBackoff = TimeSpan.FromSeconds(2) });
await runner.StartAsync();

var vm = VmId.New();
var placed = cheapEu[0].Id;
await Step(lifecycle.CreateAsync(vm, new VmSpec(wallet, new Resources(2, 2048, 20), QualityTier.Standard, BandwidthTier.Performance)));
await Step(lifecycle.TransitionAsync(vm, VmState.Scheduled, VmTransitionCause.Scheduler, "cheapest eu-west node", placed));
await Step(lifecycle.TransitionAsync(vm, VmState.Provisioning, VmTransitionCause.CommandAcknowledged));
lock (vmReports)
{
    vmReports[placed] = [new VmStatusReport(vm, VmState.Running)];
}

// The agent's next heartbeat reports the domain running; the reconciler feeds it to the state machine.
var reconciled = await new VmStateReconciler(lifecycle).ApplyHeartbeatAsync(
    new NodeHeartbeat(placed, new Resources(2, 2048, 20), [new VmStatusReport(vm, VmState.Running)]));
await Step(Task.FromResult(reconciled.Applied.Single()));
try
{
    await lifecycle.TransitionAsync(vm, VmState.Pending, VmTransitionCause.Manual);
}
catch (VmTransitionException ex)
{
    Say($"refused: {ex.Message}");
}

await WaitForEffects(vmStore, vm);
await Step(lifecycle.TransitionAsync(vm, VmState.Stopping, VmTransitionCause.Command, "owner asked"));
await Step(lifecycle.TransitionAsync(vm, VmState.Stopped, VmTransitionCause.CommandAcknowledged));
lock (vmReports)
{
    vmReports[placed] = [];
}

await Step(lifecycle.TransitionAsync(vm, VmState.Deleting, VmTransitionCause.Command));
await Step(lifecycle.TransitionAsync(vm, VmState.Deleted, VmTransitionCause.CommandAcknowledged));
await WaitForEffects(vmStore, vm);
foreach (var e in await vmStore.GetEffectsAsync(vm))
{
    Say($"outbox {e.Id}: {e.Status} after {e.Attempts} attempt(s)");
}

// --- Restart: everything comes back from the file --------------------------------------------
await stopBeats.CancelAsync();
await beats;
await runner.DisposeAsync();
await monitor.DisposeAsync();
await registry.DisposeAsync();
Say("restart: disposed everything, reopening the same SQLite file");
var db2 = new SqliteDatabase(dbPath);
await using (var reopened = new NodeRegistry(new SqliteNodeStore(db2), options))
{
    var n4 = (await reopened.GetAsync(nodes[3].NodeId))!;
    var n = (await reopened.GetAsync(placed))!;
    Say($"node 4 after restart: {n4.FailedHeartbeats} failed heartbeats, uptime {n4.Uptime:P2}");
    Say($"node {Short(placed)} after restart: VMs hosted {n.VmsHosted}, completed cleanly {n.VmsCompletedCleanly}");
    var history = await new SqliteVmStore(db2).GetHistoryAsync(vm);
    Say($"VM {Short(vm)} history: {string.Join(" -> ", history.Select(h => h.To))}");
}

SqliteConnection.ClearAllPools();
if (!keep)
{
    Directory.Delete(dir, recursive: true);
}

Say("done");
return 0;

// --- helpers -----------------------------------------------------------------------------------
static void Say(string text) => Clock.Say(text);

static string Short(object id) => id.ToString()![..8];

int ArgValue(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;
}

async Task Step(Task<VmTransitionResult> transition)
{
    var r = await transition;
    Say($"VM {Short(r.Vm.Id)} is {r.Vm.State} (version {r.Vm.Version}){(r.EffectIds.Count > 0 ? $", queued: {string.Join(", ", r.EffectIds.Select(e => e.Split('/')[^1]))}" : string.Empty)}");
}

static async Task WaitUntil(Func<Task<bool>> condition, TimeSpan timeout)
{
    var deadline = DateTimeOffset.UtcNow + timeout;
    while (!await condition())
    {
        if (DateTimeOffset.UtcNow > deadline)
        {
            throw new TimeoutException($"condition not met within {timeout}");
        }

        await Task.Delay(50);
    }
}

static Task WaitForEffects(IVmStore store, VmId vm) =>
    WaitUntil(async () => (await store.GetEffectsAsync(vm)).All(e => e.Status == VmEffectStatus.Done), TimeSpan.FromSeconds(30));

internal static class Clock
{
    private static readonly DateTimeOffset Started = DateTimeOffset.UtcNow;

    public static void Say(string text) => Console.WriteLine($"[{(DateTimeOffset.UtcNow - Started).TotalSeconds,6:F2}s] {text}");
}

/// <summary>Prints every registry change, as a scheduler inventory would consume it.</summary>
internal sealed class PrintingObserver : INodeRegistryObserver
{
    public void OnNodeChanged(NodeChange change) =>
        Clock.Say($"registry: node {change.NodeId.Value[..8]} {change.Kind} ({change.Node.Registration.Region}, {change.Node.Capacity.ComputePoints} points, {change.Node.Registration.Connectivity})");
}
