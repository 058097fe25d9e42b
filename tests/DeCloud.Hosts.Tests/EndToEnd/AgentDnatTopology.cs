using System.Diagnostics;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>
/// A public node in network namespaces (all names prefixed <c>dca9</c>):
/// <code>
///   dca9-cli (client 10.209.1.2) ── dca9-node (10.209.1.1 public, 10.209.2.1 VM side) ── dca9-vm (service 10.209.2.2:8080)
/// </code>
/// The node forwards IP; the VM side routes back through the node, so DNAT'd replies are un-NATed there. The
/// agent's iptables commands run inside <c>dca9-node</c> (<c>ip netns exec</c>). Leftovers of a crashed run are removed first.
/// </summary>
internal sealed class AgentDnatTopology : IAsyncDisposable
{
    public const string Node = "dca9-node";
    public const string Vm = "dca9-vm";
    public const string Client = "dca9-cli";
    public const string NodePublicIp = "10.209.1.1";
    public const string VmIp = "10.209.2.2";
    public const int ServicePort = 8080;

    private Process? _service;

    private AgentDnatTopology()
    {
    }

    /// <summary>Builds the topology (skips on a dev box without root/ip/iptables/socat; fails under CI=true).</summary>
    public static async Task<AgentDnatTopology> StartAsync()
    {
        RealDependency.RequireRoot("network namespaces and iptables");
        foreach (var tool in new[] { "ip", "iptables", "socat", "ss" })
        {
            RealDependency.RequireExecutable(tool);
        }

        var topology = new AgentDnatTopology();
        try
        {
            await topology.BuildAsync();
            return topology;
        }
        catch
        {
            await topology.DisposeAsync();
            throw;
        }
    }

    private async Task BuildAsync()
    {
        await CleanupAsync();
        (await ProcessRunner.ShAsync($$"""
            set -e
            for ns in {{Node}} {{Vm}} {{Client}}; do ip netns add $ns; ip -n $ns link set lo up; done
            ip link add dca9n-c netns {{Node}} type veth peer name dca9c-n netns {{Client}}
            ip link add dca9n-v netns {{Node}} type veth peer name dca9v-n netns {{Vm}}
            ip -n {{Node}} addr add {{NodePublicIp}}/24 dev dca9n-c
            ip -n {{Node}} addr add 10.209.2.1/24 dev dca9n-v
            ip -n {{Client}} addr add 10.209.1.2/24 dev dca9c-n
            ip -n {{Vm}} addr add {{VmIp}}/24 dev dca9v-n
            for pair in {{Node}}:dca9n-c {{Node}}:dca9n-v {{Client}}:dca9c-n {{Vm}}:dca9v-n; do ip -n ${pair%%:*} link set ${pair#*:} up; done
            ip -n {{Vm}} route add default via 10.209.2.1
            ip netns exec {{Node}} sysctl -qw net.ipv4.ip_forward=1
            """, TimeSpan.FromMinutes(1))).EnsureSuccess("creating the dca9 namespaces");

        // The VM-side service: a TCP echo that prefixes its answers, so the client knows who answered.
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", Vm, "socat", $"TCP-LISTEN:{ServicePort},fork,reuseaddr", "SYSTEM:'printf vm-side:; cat'" })
        {
            psi.ArgumentList.Add(a);
        }

        _service = Process.Start(psi)!;
        for (var i = 0; i < 100; i++)
        {
            if ((await ProcessRunner.ShAsync($"ip netns exec {Vm} ss -ltn | grep -q ':{ServicePort} '")).ExitCode == 0)
            {
                return;
            }

            await Task.Delay(50);
        }

        throw new InvalidOperationException("the VM-side socat service did not start listening.");
    }

    /// <summary>Sends <paramref name="text"/> from the client namespace to the node's public port; returns the reply (empty when refused).</summary>
    public static async Task<ProcessRunner.Result> ClientRoundTripAsync(int publicPort, string text)
    {
        var r = await ProcessRunner.ShAsync($"printf '{text}' | ip netns exec {Client} socat -t 2 -T 5 - TCP:{NodePublicIp}:{publicPort},connect-timeout=3", TimeSpan.FromSeconds(30));
        return r with { StandardOutput = r.StandardOutput.TrimEnd('\n') };
    }

    /// <summary>The node's DNAT rules for <paramref name="publicPort"/> in the agent's chain.</summary>
    public static async Task<int> DnatRuleCountAsync(string chain, int publicPort)
    {
        var r = await ProcessRunner.ShAsync($"ip netns exec {Node} iptables -w -t nat -S {chain}");
        return r.ExitCode != 0 ? -1 : r.StandardOutput.Split('\n').Count(l => l.Contains($"--dport {publicPort} ", StringComparison.Ordinal) && l.Contains("DNAT", StringComparison.Ordinal));
    }

    public async ValueTask DisposeAsync()
    {
        if (_service is { HasExited: false })
        {
            _service.Kill(entireProcessTree: true);
            await _service.WaitForExitAsync();
        }

        _service?.Dispose();
        await CleanupAsync();
    }

    private static async Task CleanupAsync() =>
        await ProcessRunner.ShAsync($"for ns in {Node} {Vm} {Client}; do ip netns pids $ns 2>/dev/null | xargs -r kill -9; ip netns del $ns 2>/dev/null; done; true");
}
