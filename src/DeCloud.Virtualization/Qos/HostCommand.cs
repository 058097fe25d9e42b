using System.Diagnostics;

namespace DeCloud.Virtualization.Qos;

/// <summary>Runs a host tool (<c>tc</c>, <c>ip</c>) with an argument list (never a shell) and a time bound.</summary>
internal static class HostCommand
{
    internal static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    internal readonly record struct Result(int ExitCode, string Output, string Error, string CommandLine)
    {
        public bool Succeeded => ExitCode == 0;

        public Result EnsureSuccess() => Succeeded ? this : throw new ShapingException(CommandLine, ExitCode, Error.Length > 0 ? Error : Output);
    }

    internal static async Task<Result> RunAsync(string fileName, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        var commandLine = fileName + " " + string.Join(' ', arguments);
        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new ShapingException(commandLine, -1, $"cannot start {fileName}: {ex.Message}");
        }

        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            cancellationToken.ThrowIfCancellationRequested();
            throw new ShapingException(commandLine, -1, $"did not finish within {DefaultTimeout.TotalSeconds} s");
        }

        return new Result(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false), commandLine);
    }
}
