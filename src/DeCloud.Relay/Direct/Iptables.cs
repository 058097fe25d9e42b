using System.Diagnostics;
using System.Text;

namespace DeCloud.Relay.Direct;

/// <summary>Runs iptables commands; a seam so rule generation is testable without root.</summary>
internal interface IIptables
{
    /// <summary>Runs one command; returns the exit code and the error output.</summary>
    Task<(int ExitCode, string Error)> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken);
}

/// <summary>Runs the configured iptables command line (for example <c>iptables -w</c>).</summary>
internal sealed class ProcessIptables(IReadOnlyList<string> command) : IIptables
{
    public async Task<(int ExitCode, string Error)> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo(command[0])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in command.Skip(1).Concat(arguments))
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new RelayException($"Could not start '{command[0]}'.");
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        var error = new StringBuilder(await stderr.ConfigureAwait(false)).Append(await stdout.ConfigureAwait(false)).ToString().Trim();
        return (process.ExitCode, error);
    }
}
