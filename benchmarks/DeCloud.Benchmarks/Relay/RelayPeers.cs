using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace DeCloud.Benchmarks.Relay;

/// <summary>The benchmark's target service: 'S' streams bytes forever, 'E' echoes, 'H' holds the connection idle.</summary>
internal sealed class BenchTarget : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public BenchTarget()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(4096);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _loop = AcceptAsync();
    }

    public int Port { get; }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await _loop;
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try
            {
                s = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }

            s.NoDelay = true;
            _ = ServeAsync(s);
        }
    }

    private async Task ServeAsync(Socket s)
    {
        using var _ = s;
        var buffer = new byte[64 * 1024];
        try
        {
            if (await s.ReceiveAsync(buffer.AsMemory(0, 1), _stop.Token) == 0)
            {
                return;
            }

            switch (buffer[0])
            {
                case (byte)'S':
                    while (true)
                    {
                        await s.SendAsync(buffer, _stop.Token);
                    }

                case (byte)'H':
                    while (await s.ReceiveAsync(buffer, _stop.Token) > 0)
                    {
                    }

                    return;
                case (byte)'E':
                    while (true)
                    {
                        var n = await s.ReceiveAsync(buffer, _stop.Token);
                        if (n == 0)
                        {
                            return;
                        }

                        await s.SendAsync(buffer.AsMemory(0, n), _stop.Token);
                    }
            }
        }
        catch (Exception)
        {
        }
    }
}

/// <summary>External peer processes (socat, sshd, ssh) started for the comparison and killed afterwards.</summary>
internal sealed class PeerProcesses : IAsyncDisposable
{
    private readonly List<Process> _processes = [];
    private readonly List<string> _dirs = [];

    public static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    public static bool Has(string tool) =>
        new[] { "/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin" }.Any(d => File.Exists(Path.Combine(d, tool)));

    public Process Start(string file, params string[] args) => StartWithOutput(file, null, args);

    /// <summary>Starts a process and passes each line it prints on stdout to <paramref name="onOutput"/>.</summary>
    public Process StartWithOutput(string file, Action<string>? onOutput, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        var p = Process.Start(psi)!;
        p.ErrorDataReceived += (_, _) => { };
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                onOutput?.Invoke(line);
            }
        };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        _processes.Add(p);
        return p;
    }

    public string TempDir()
    {
        var d = Directory.CreateTempSubdirectory("dcr-bench-").FullName;
        _dirs.Add(d);
        return d;
    }

    /// <summary>
    /// socat as a plain forwarder in the relay's two-hop shape: public hop -> node hop -> target. Returns the public
    /// port and the two listening processes (each forks one process per connection).
    /// </summary>
    public async Task<(int Port, int[] Pids)> StartSocatTwoHopAsync(int target)
    {
        var nodeHop = FreePort();
        var relayHop = FreePort();
        var node = Start("socat", $"TCP-LISTEN:{nodeHop},bind=127.0.0.1,fork,reuseaddr,nodelay", $"TCP:127.0.0.1:{target},nodelay");
        var relay = Start("socat", $"TCP-LISTEN:{relayHop},bind=127.0.0.1,fork,reuseaddr,nodelay", $"TCP:127.0.0.1:{nodeHop},nodelay");
        await WaitListeningAsync(nodeHop);
        await WaitListeningAsync(relayHop);
        return (relayHop, [relay.Id, node.Id]);
    }

    /// <summary>
    /// The classic reverse tunnel: a private sshd on a loopback port (throwaway host key and authorized key in a temp
    /// dir; the system sshd and its config are never touched) and <c>ssh -R</c> toward it.
    /// </summary>
    public async Task<int> StartSshReverseAsync(int target)
    {
        var dir = TempDir();
        var sshdPort = FreePort();
        var forwarded = FreePort();
        foreach (var (file, type) in new[] { ("host_key", "ed25519"), ("client_key", "ed25519") })
        {
            var keygen = Start("ssh-keygen", "-q", "-t", type, "-N", string.Empty, "-f", Path.Combine(dir, file));
            await keygen.WaitForExitAsync();
        }

        File.Copy(Path.Combine(dir, "client_key.pub"), Path.Combine(dir, "authorized_keys"));
        await File.WriteAllTextAsync(Path.Combine(dir, "sshd_config"), $"""
            Port {sshdPort}
            ListenAddress 127.0.0.1
            HostKey {dir}/host_key
            AuthorizedKeysFile {dir}/authorized_keys
            PidFile {dir}/sshd.pid
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            AllowTcpForwarding yes
            """);
        Directory.CreateDirectory("/run/sshd");
        Start("/usr/sbin/sshd", "-D", "-e", "-f", Path.Combine(dir, "sshd_config"));
        await WaitListeningAsync(sshdPort);
        Start("ssh", "-N", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ExitOnForwardFailure=yes", "-i", Path.Combine(dir, "client_key"), "-p", sshdPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-R", $"127.0.0.1:{forwarded}:127.0.0.1:{target}", $"{Environment.UserName}@127.0.0.1");
        await WaitListeningAsync(forwarded);
        return forwarded;
    }

    public static async Task WaitListeningAsync(int port)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await s.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) when (sw.Elapsed < TimeSpan.FromSeconds(15))
            {
                await Task.Delay(50);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _processes)
        {
            try
            {
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                }

                await p.WaitForExitAsync();
            }
            catch (InvalidOperationException)
            {
            }

            p.Dispose();
        }

        foreach (var d in _dirs)
        {
            try
            {
                Directory.Delete(d, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

/// <summary>CPU time used by processes and by their children that have exited, from /proc (Linux), in seconds.</summary>
internal static class ProcessCpu
{
    private const double TicksPerSecond = 100; // USER_HZ, 100 on every Linux ABI .NET runs on.

    /// <summary>
    /// User + system time of <paramref name="pids"/> plus that of their reaped children (utime, stime, cutime, cstime):
    /// socat's per-connection processes count once they have exited and been waited for.
    /// </summary>
    public static double Sample(IEnumerable<int> pids)
    {
        double total = 0;
        foreach (var pid in pids)
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the command name (which may hold spaces) start at field 3; utime..cstime are fields 14-17.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            for (var f = 11; f <= 14; f++)
            {
                total += long.Parse(fields[f], System.Globalization.CultureInfo.InvariantCulture) / TicksPerSecond;
            }
        }

        return total;
    }
}
