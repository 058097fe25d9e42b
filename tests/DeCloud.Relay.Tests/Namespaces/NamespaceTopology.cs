using System.Diagnostics;
using System.Reflection;
using System.Threading.Channels;
using DeCloud.Testing;

namespace DeCloud.Relay.Tests.Namespaces;

/// <summary>
/// A real CGNAT topology in network namespaces (all names prefixed <c>dcr</c>):
/// <code>
///   dcr-inet (198.18.2.2) ── dcr-pub (relay: 198.18.2.1, 198.18.1.1) ── dcr-cgn (198.18.1.2, MASQUERADE) ── dcr-home (100.64.0.2)
/// </code>
/// The relay's namespace has no route to 100.64.0.0/24 and the carrier NAT drops new inbound connections,
/// so the home node can only dial out. Leftovers of a crashed run are removed first.
/// </summary>
public sealed class NamespaceTopology : IAsyncLifetime
{
    public const string Public = "dcr-pub";
    public const string Cgn = "dcr-cgn";
    public const string Home = "dcr-home";
    public const string Internet = "dcr-inet";
    public const string RelayPublicIp = "198.18.2.1";
    public const string RelayControlIp = "198.18.1.1";
    public const string CgnPublicIp = "198.18.1.2";
    public const string HomeIp = "100.64.0.2";
    public const string InternetIp = "198.18.2.2";
    public const string Secret = "dcr-netns-secret-0123456789";

    public string? SkipReason { get; private set; }

    public string WorkDir { get; } = Directory.CreateTempSubdirectory("dcr-netns-").FullName;

    public static string SampleDll
    {
        get
        {
            var configuration = typeof(NamespaceTopology).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
            var dir = AppContext.BaseDirectory;
            while (dir is not null && !File.Exists(Path.Combine(dir, "DeCloud.slnx")))
            {
                dir = Path.GetDirectoryName(dir);
            }

            return Path.Combine(dir ?? ".", "samples", "RelayEmbedding", "bin", configuration, "net10.0", "RelayEmbedding.dll");
        }
    }

    public static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? RealDependency.FindExecutable("dotnet") ?? "dotnet";

    public async ValueTask InitializeAsync()
    {
        var missing = new List<string>();
        if (!RealDependency.IsRoot)
        {
            missing.Add("root");
        }

        foreach (var tool in new[] { "ip", "iptables", "socat", "python3" })
        {
            if (RealDependency.FindExecutable(tool) is null)
            {
                missing.Add(tool);
            }
        }

        if (!File.Exists(SampleDll))
        {
            missing.Add($"the built sample at {SampleDll}");
        }

        if (missing.Count > 0)
        {
            SkipReason = string.Join(", ", missing);
            return;
        }

        await CleanupAsync();
        var script = $$"""
            set -e
            for ns in {{Public}} {{Cgn}} {{Home}} {{Internet}}; do ip netns add $ns; ip -n $ns link set lo up; done
            ip link add dcr-pub-c type veth peer name dcr-cgn-w
            ip link set dcr-pub-c netns {{Public}}; ip link set dcr-cgn-w netns {{Cgn}}
            ip link add dcr-pub-i type veth peer name dcr-inet-0
            ip link set dcr-pub-i netns {{Public}}; ip link set dcr-inet-0 netns {{Internet}}
            ip link add dcr-cgn-h type veth peer name dcr-home-0
            ip link set dcr-cgn-h netns {{Cgn}}; ip link set dcr-home-0 netns {{Home}}
            ip -n {{Public}} addr add {{RelayControlIp}}/24 dev dcr-pub-c; ip -n {{Public}} link set dcr-pub-c up
            ip -n {{Public}} addr add {{RelayPublicIp}}/24 dev dcr-pub-i; ip -n {{Public}} link set dcr-pub-i up
            ip -n {{Internet}} addr add {{InternetIp}}/24 dev dcr-inet-0; ip -n {{Internet}} link set dcr-inet-0 up
            ip -n {{Internet}} route add default via {{RelayPublicIp}}
            ip -n {{Cgn}} addr add {{CgnPublicIp}}/24 dev dcr-cgn-w; ip -n {{Cgn}} link set dcr-cgn-w up
            ip -n {{Cgn}} addr add 100.64.0.1/24 dev dcr-cgn-h; ip -n {{Cgn}} link set dcr-cgn-h up
            ip -n {{Cgn}} route add default via {{RelayControlIp}}
            ip -n {{Home}} addr add {{HomeIp}}/24 dev dcr-home-0; ip -n {{Home}} link set dcr-home-0 up
            ip -n {{Home}} route add default via 100.64.0.1
            ip netns exec {{Public}} sysctl -qw net.ipv4.ip_forward=1
            ip netns exec {{Cgn}} sysctl -qw net.ipv4.ip_forward=1
            ip netns exec {{Cgn}} iptables -w -t nat -N DCR-CGN
            ip netns exec {{Cgn}} iptables -w -t nat -A DCR-CGN -s 100.64.0.0/24 -o dcr-cgn-w -j MASQUERADE
            ip netns exec {{Cgn}} iptables -w -t nat -A POSTROUTING -j DCR-CGN
            ip netns exec {{Cgn}} iptables -w -N DCR-CGN-IN
            ip netns exec {{Cgn}} iptables -w -A DCR-CGN-IN -i dcr-cgn-w -o dcr-cgn-h -m conntrack --ctstate NEW -j DROP
            ip netns exec {{Cgn}} iptables -w -A FORWARD -j DCR-CGN-IN
            """;
        (await ProcessRunner.ShAsync(script, TimeSpan.FromMinutes(1))).EnsureSuccess("building the namespace topology");
    }

    public async ValueTask DisposeAsync()
    {
        if (SkipReason is null)
        {
            await CleanupAsync();
        }

        try
        {
            Directory.Delete(WorkDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public void RequireTopology() => RealDependency.Require(SkipReason is null, $"network namespace suite needs {SkipReason}");

    /// <summary>Runs a command inside a namespace and waits for it.</summary>
    public static Task<ProcessRunner.Result> ExecAsync(string ns, string script, TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync("ip", ["netns", "exec", ns, "bash", "-c", script], timeout ?? TimeSpan.FromMinutes(1));

    /// <summary>Starts a long-running process inside a namespace.</summary>
    public static NamespaceProcess Start(string ns, string fileName, params string[] arguments) => new(ns, fileName, arguments);

    private static async Task CleanupAsync()
    {
        // Namespaces own their veths and iptables state: deleting them removes everything we created.
        await ProcessRunner.ShAsync(
            "for ns in $(ip netns list | awk '{print $1}' | grep '^dcr-'); do ip netns pids $ns | xargs -r kill -9; ip netns del $ns; done; " +
            "for l in $(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^dcr-'); do ip link del $l; done; true",
            TimeSpan.FromMinutes(1));
    }
}

/// <summary>A process running in a namespace whose stdout lines can be awaited; killed on dispose.</summary>
public sealed class NamespaceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly System.Text.StringBuilder _stderr = new();

    public NamespaceProcess(string ns, string fileName, string[] arguments)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", ns, fileName }.Concat(arguments))
        {
            psi.ArgumentList.Add(a);
        }

        _process = new Process { StartInfo = psi };
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) { _lines.Writer.TryWrite(e.Data); } };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_stderr) { _stderr.AppendLine(e.Data); } } };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string StandardError
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>Waits for the next stdout line starting with <paramref name="prefix"/>.</summary>
    public async Task<string> WaitForLineAsync(string prefix, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(1));
        try
        {
            while (true)
            {
                var line = await _lines.Reader.ReadAsync(cts.Token);
                if (line.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return line;
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"No line starting with '{prefix}' from the process. stderr:\n{StandardError}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync().Within(TimeSpan.FromSeconds(30));
        _process.Dispose();
    }
}
