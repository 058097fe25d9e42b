using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DeCloud.Agent;
using DeCloud.Cli.Client;
using DeCloud.Cli.Commands;
using DeCloud.Orchestrator;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace DeCloud.Cli.Demo;

/// <summary>
/// Runs the demo: everything in this process on loopback, with SQLite files in a temp folder.
/// Each step prints what it did; any failure stops the demo with a non-zero exit code.
/// </summary>
internal sealed class DemoRunner(CliOutput output, string hypervisor, bool keepData) : IAsyncDisposable
{
    /// <summary>libvirt's in-process test driver when libvirt is installed, else the in-memory hypervisor.</summary>
    public static string DefaultHypervisor { get; } =
        File.Exists("/usr/lib/x86_64-linux-gnu/libvirt.so.0") || File.Exists("/usr/lib/aarch64-linux-gnu/libvirt.so.0") || File.Exists("/usr/lib64/libvirt.so.0")
            ? "libvirt" : "simulated";

    private readonly string _dir = Directory.CreateTempSubdirectory("decloud-demo-").FullName;
    private readonly List<IHost> _agents = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private WebApplication? _orchestrator;
    private TcpListener? _echo;
    private int _step;

    public async Task<int> RunAsync(CancellationToken ct)
    {
        await Say($"DeCloud demo: data in {_dir}, hypervisor {hypervisor}").ConfigureAwait(false);

        // 1. Orchestrator on a free loopback port.
        _orchestrator = OrchestratorApplication.Create(
            ["--Orchestrator:ApiUrl=http://127.0.0.1:0", "--Orchestrator:AgentUrl=http://127.0.0.1:0", "--Orchestrator:DataDirectory=" + Path.Combine(_dir, "orchestrator"),
             "--Orchestrator:HeartbeatInterval=00:00:00.500", "--Logging:LogLevel:Default=Warning"]);
        await _orchestrator.StartAsync(ct).ConfigureAwait(false);
        var addresses = OrchestratorApplication.Addresses(_orchestrator);
        var url = addresses.Api;
        await Step($"orchestrator: API on {url}, agent gRPC on {addresses.Agents} (SQLite {Path.Combine(_dir, "orchestrator", "orchestrator.db")})").ConfigureAwait(false);

        // 2. Two agents: a public node (also the relay) and a node behind NAT that only dials out.
        var publicKey = WalletKey.Generate();
        var natKey = WalletKey.Generate();
        StartAgent("public", publicKey, addresses.Agents, behindNat: false);
        StartAgent("nat", natKey, addresses.Agents, behindNat: true);
        using var anonymous = new OrchestratorClient(url, null);
        var nodes = await WaitAsync(async () =>
        {
            var n = await anonymous.SearchNodesAsync("?online=true", ct).ConfigureAwait(false);
            return n.Count == 2 ? n : null;
        }, "both agents to register", ct).ConfigureAwait(false);
        var natNode = nodes.Single(n => n.BehindNat);
        var publicNode = nodes.Single(n => !n.BehindNat);
        await Step($"public agent registered as node {Table.Short(publicNode.Id)} ({publicNode.ComputePoints} points from its benchmark on {publicNode.CpuCores} x {publicNode.CpuModel}, operator {publicNode.Operator})").ConfigureAwait(false);
        await Step($"NAT'd agent registered as node {Table.Short(natNode.Id)} over its outbound stream ({natNode.ComputePoints} points)").ConfigureAwait(false);

        // 3. A user signs in with a fresh wallet (Sign-In with Ethereum).
        var user = WalletKey.Generate();
        var session = await UserCommands.SignInAsync(url, user, ct).ConfigureAwait(false);
        await Step($"user {session.Address} signed in with a wallet signature").ConfigureAwait(false);
        using var client = new OrchestratorClient(url, session.Token);

        // 4. Two VMs through the HTTP API: one auto-placed, one on the NAT'd node.
        var auto = await client.CreateVmAsync(new { name = "web", computePoints = 1, memoryMiB = 256, storageGiB = 1, qualityTier = "Burstable" }, ct).ConfigureAwait(false);
        auto = await UserCommands.WaitForStateAsync(client, new CliOutput(TextWriter.Null, TextWriter.Null), auto.Id, "Running", TimeSpan.FromMinutes(2), ct).ConfigureAwait(false);
        await Step($"VM {auto.Name} ({auto.Id}) auto-placed on node {Table.Short(auto.NodeId)}: {auto.State}").ConfigureAwait(false);
        if (await DemoTiers.DescribeAsync(auto.Id, ct).ConfigureAwait(false) is { } tiers)
        {
            await Say($"    tiers applied by the agent (Burstable, Standard bandwidth): {tiers}").ConfigureAwait(false);
        }
        var pinned = await client.CreateVmAsync(new { name = "backend", computePoints = 1, memoryMiB = 256, storageGiB = 1, qualityTier = "Burstable", nodeId = natNode.Id }, ct).ConfigureAwait(false);
        pinned = await UserCommands.WaitForStateAsync(client, new CliOutput(TextWriter.Null, TextWriter.Null), pinned.Id, "Running", TimeSpan.FromMinutes(2), ct).ConfigureAwait(false);
        await Step($"VM {pinned.Name} ({pinned.Id}) placed on the chosen NAT'd node {Table.Short(pinned.NodeId)}: {pinned.State}").ConfigureAwait(false);
        if (auto.State != "Running" || pinned.State != "Running")
        {
            await Say("FAILED: a VM did not reach Running.").ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        await BillingStepAsync(client, natNode.Id, natKey, ct).ConfigureAwait(false);

        // 5. The NAT'd node got a relay (the public node runs the relay role), and opened its tunnel.
        var relayed = await WaitAsync(async () =>
        {
            var n = await anonymous.SearchNodesAsync("?online=true", ct).ConfigureAwait(false);
            return n.SingleOrDefault(x => x.BehindNat && x.RelayNodeId is not null);
        }, "a relay assignment for the NAT'd node", ct).ConfigureAwait(false);
        await Step($"relay {Table.Short(relayed.RelayNodeId!)} (the public node's relay role) assigned to the NAT'd node; its tunnel is authenticated by a relay token the orchestrator signed for that node and relay").ConfigureAwait(false);

        // 6. A public TCP port to a service on the NAT'd side, and a byte round trip through the relay.
        _echo = new TcpListener(IPAddress.Loopback, 0);
        _echo.Start();
        _ = EchoLoopAsync(_echo, ct);
        var echoPort = ((IPEndPoint)_echo.LocalEndpoint).Port;
        var vmForPort = pinned;
        var port = await client.OpenPortAsync(vmForPort.Id, echoPort, ct).ConfigureAwait(false);
        port = await WaitAsync(async () =>
        {
            var ports = await client.ListPortsAsync(vmForPort.Id, ct).ConfigureAwait(false);
            // By target: when the asked-for port was taken on the relay host, the listing shows the port the relay bound.
            var p = ports.Single(x => x.TargetPort == echoPort);
            return p.State == "open" ? p : null;
        }, $"public port {port.PublicPort} to open", ct).ConfigureAwait(false);
        await Step(port.ViaRelayNodeId is { } relay
            ? $"public port {port.Host}:{port.PublicPort} opened on relay {Table.Short(relay)}, tunnelled to the NAT'd node's service on port {echoPort}"
            : $"public port {port.Host}:{port.PublicPort} on node {Table.Short(port.NodeId)} forwards to the service on port {echoPort}").ConfigureAwait(false);
        var reply = await RoundTripAsync(port.Host, port.PublicPort, "hello through DeCloud", ct).ConfigureAwait(false);
        if (reply != "hello through DeCloud")
        {
            await Say($"FAILED: round trip returned '{reply}'.").ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        await Step($"byte round trip through {port.Host}:{port.PublicPort}{(port.ViaRelayNodeId is null ? string.Empty : " (relay -> NAT'd node)")}: sent and received \"{reply}\"").ConfigureAwait(false);

        await Step(await DemoConnectToken.RunAsync(client, pinned, _agents, ct).ConfigureAwait(false)).ConfigureAwait(false);

        // 7. Clean up through the API.
        foreach (var vm in new[] { auto, pinned })
        {
            await client.DeleteVmAsync(vm.Id, ct).ConfigureAwait(false);
            await UserCommands.WaitForStateAsync(client, new CliOutput(TextWriter.Null, TextWriter.Null), vm.Id, "Deleted", TimeSpan.FromMinutes(1), ct).ConfigureAwait(false);
        }

        await Step("both VMs deleted through the API").ConfigureAwait(false);
        await Say($"Demo finished in {_clock.Elapsed.TotalSeconds:F1} s.").ConfigureAwait(false);
        return ExitCodes.Ok;
    }

    public async ValueTask DisposeAsync()
    {
        _echo?.Stop();
        // Last started first: the NAT'd agent depends on the public agent's relay role, so it stops before it.
        foreach (var a in Enumerable.Reverse(_agents))
        {
            await a.StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            a.Dispose();
        }

        if (_orchestrator is not null)
        {
            await _orchestrator.StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            await _orchestrator.DisposeAsync().ConfigureAwait(false);
        }

        if (!keepData)
        {
            try
            {
                Directory.Delete(_dir, recursive: true);
            }
            catch (IOException)
            {
                // Leave it; it is in the temp folder.
            }
        }

        await Say("Shut down cleanly" + (keepData ? $"; data kept in {_dir}." : ".")).ConfigureAwait(false);
    }

    private void StartAgent(string name, WalletKey key, Uri url, bool behindNat)
    {
        var keyFile = Path.Combine(_dir, name + ".key");
        key.Save(keyFile);
        var host = AgentApplication.Create(
        [
            "--Agent:OrchestratorUrl=" + url, "--Agent:WalletKeyFile=" + keyFile, "--Agent:DataDirectory=" + Path.Combine(_dir, name),
            "--Agent:Hypervisor=" + hypervisor, "--Agent:MachineId=demo-" + name, "--Agent:BehindNat=" + behindNat,
            "--Agent:RelayCapable=" + !behindNat, "--Agent:RelayControlPort=0", "--Agent:BenchmarkDuration=00:00:00.500", "--Agent:MemoryMiB=4096",
            "--Logging:LogLevel:Default=Warning",
        ]);
        host.Start();
        _agents.Add(host);
    }

    private static async Task<string> RoundTripAsync(string host, int port, string text, CancellationToken ct)
    {
        using var s = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await s.ConnectAsync(host, port, ct).ConfigureAwait(false);
        await s.SendAsync(Encoding.UTF8.GetBytes(text), SocketFlags.None, ct).ConfigureAwait(false);
        s.Shutdown(SocketShutdown.Send);
        var buffer = new byte[1024];
        var sb = new StringBuilder();
        int n;
        while ((n = await s.ReceiveAsync(buffer, SocketFlags.None, ct).ConfigureAwait(false)) > 0)
        {
            sb.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }

        return sb.ToString();
    }

    private static async Task EchoLoopAsync(TcpListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                using (client)
                {
                    var buffer = new byte[4096];
                    int n;
                    while ((n = await client.ReceiveAsync(buffer, SocketFlags.None, ct).ConfigureAwait(false)) > 0)
                    {
                        await client.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, ct).ConfigureAwait(false);
                    }

                    client.Shutdown(SocketShutdown.Send);
                }
            }, ct);
        }
    }

    private async Task<T> WaitAsync<T>(Func<Task<T?>> probe, string what, CancellationToken ct)
        where T : class
    {
        var start = _clock.Elapsed;
        while (_clock.Elapsed - start < TimeSpan.FromMinutes(2))
        {
            if (await probe().ConfigureAwait(false) is { } v)
            {
                return v;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), TimeProvider.System, ct).ConfigureAwait(false);
        }

        throw new CliException(ExitCodes.Failure, $"timed out waiting for {what}.");
    }

    /// <summary>
    /// Billing: the NAT'd node's operator sets prices (one below the floor, which Billing raises), the user gets an itemized
    /// estimate on that node, and the balance shows each VM's rate as frozen at placement (the new prices do not touch it).
    /// </summary>
    private async Task BillingStepAsync(OrchestratorClient client, string nodeId, WalletKey operatorKey, CancellationToken ct)
    {
        var op = await UserCommands.SignInAsync(client.BaseAddress, operatorKey, ct).ConfigureAwait(false);
        using var opClient = new OrchestratorClient(client.BaseAddress, op.Token);
        var priced = await opClient.SetNodePricingAsync(nodeId, new { cpuPerPointHour = 0.004m, memoryPerGiBHour = 0.004m }, ct).ConfigureAwait(false);
        await Step($"NAT'd node's operator asked CPU 0.004 and memory 0.004 USDC/h (PATCH /api/v1/nodes/{{id}}/pricing): in effect CPU {BillingCommands.Usdc(priced.Effective.CpuPerPointHour)}, memory {BillingCommands.Usdc(priced.Effective.MemoryPerGiBHour)} (raised to the floor: {string.Join(", ", priced.RaisedToFloor)})").ConfigureAwait(false);
        var estimate = await client.EstimateVmAsync(new { computePoints = 1, memoryMiB = 256, storageGiB = 1, qualityTier = "Burstable", nodeId }, ct).ConfigureAwait(false);
        await Step($"cost estimate (POST /api/v1/vms/estimate), platform defaults {BillingCommands.Usdc(estimate.PlatformDefaults.HourlyUsdc)} USDC/h\n"
            + BillingCommands.EstimateTable($"on node {Table.Short(nodeId)}", estimate.Node!.Estimate).TrimEnd()).ConfigureAwait(false);
        var balance = await client.GetBalanceAsync(ct).ConfigureAwait(false);
        await Step("balance (GET /api/v1/balance); each VM keeps the rate frozen when it was placed:\n" + BillingCommands.BalanceText(balance).TrimEnd()).ConfigureAwait(false);
    }

    private Task Step(string text) => Say($"[{++_step}] {text}");

    private async Task Say(string text)
    {
        await output.Out.WriteLineAsync($"{_clock.Elapsed.TotalSeconds,6:F1}s  {text}").ConfigureAwait(false);
        await output.Out.FlushAsync().ConfigureAwait(false);
    }
}
