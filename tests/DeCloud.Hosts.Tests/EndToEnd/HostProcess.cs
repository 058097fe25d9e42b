using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>
/// One <c>decloud</c> role running as a separate process (<c>dotnet decloud.dll ...</c>), with its output
/// captured; killed (whole tree) on dispose.
/// </summary>
internal sealed class HostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Done)> _waiters = [];

    private HostProcess(Process process) => _process = process;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public static string CliDll
    {
        get
        {
            // The tests build against the CLI project; its binaries sit in the same configuration folder.
            var config = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
            var path = Path.Combine(RepoPaths.Root, "src", "DeCloud.Cli", "bin", config, "net10.0", "decloud.dll");
            return File.Exists(path) ? path : throw new FileNotFoundException($"build src/DeCloud.Cli first: {path} is missing.");
        }
    }

    public static HostProcess Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(CliDll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["Logging__Console__FormatterName"] = "simple";
        var p = new Process { StartInfo = psi };
        var host = new HostProcess(p);
        p.OutputDataReceived += (_, e) => host.OnLine(e.Data);
        p.ErrorDataReceived += (_, e) => host.OnLine(e.Data);
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return host;
    }

    /// <summary>Waits for an output line matching <paramref name="pattern"/> (also one printed before the call).</summary>
    public Task<Match> WaitForLineAsync(string pattern, TimeSpan? timeout = null)
    {
        var regex = new Regex(pattern);
        var tcs = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            foreach (var line in _output.ToString().Split('\n'))
            {
                var m = regex.Match(line);
                if (m.Success)
                {
                    return Task.FromResult(m);
                }
            }

            _waiters.Add((regex, tcs));
        }

        return tcs.Task.Within(timeout ?? TimeSpan.FromSeconds(90), $"'{pattern}' in the output of decloud; output so far:\n{Output}");
    }

    /// <summary>Kills the process tree (like a crash or power loss).</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync().Within(TimeSpan.FromSeconds(30), "the killed process to exit");
    }

    /// <summary>Waits for the process to exit on its own; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().Within(timeout, "decloud to exit; output:\n" + Output);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        finally
        {
            _process.Dispose();
        }
    }

    /// <summary>A loopback TCP port that was free a moment ago (for restarts that must keep their address).</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                var m = _waiters[i].Pattern.Match(line);
                if (m.Success)
                {
                    _waiters[i].Done.TrySetResult(m);
                    _waiters.RemoveAt(i);
                }
            }
        }
    }
}
