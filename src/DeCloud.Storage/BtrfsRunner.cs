using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Storage;

/// <summary>
/// The one place that starts <c>btrfs</c> (and <c>chattr</c>). Arguments are always passed as a list,
/// never through a shell; a failure becomes a typed exception carrying the command's stderr:
/// EDQUOT maps to <see cref="QuotaExceededException"/>, ENOSPC to <see cref="StorageFullException"/>,
/// anything else to <see cref="BtrfsCommandException"/>.
/// </summary>
internal sealed partial class BtrfsRunner
{
    private readonly ILogger _logger;

    public BtrfsRunner(string btrfsPath = "btrfs", string chattrPath = "chattr", ILogger? logger = null)
    {
        BtrfsPath = btrfsPath;
        ChattrPath = chattrPath;
        _logger = logger ?? NullLogger.Instance;
    }

    public string BtrfsPath { get; }

    public string ChattrPath { get; }

    /// <summary>Runs <c>btrfs args...</c> and returns its standard output; throws a typed error on a non-zero exit.</summary>
    public Task<string> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken = default, string? quotaVolume = null) =>
        RunProgramAsync(BtrfsPath, arguments, quotaVolume, cancellationToken);

    /// <summary>Runs <c>chattr args...</c> (for the no-COW images directory).</summary>
    public Task<string> RunChattrAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken = default) =>
        RunProgramAsync(ChattrPath, arguments, null, cancellationToken);

    /// <summary>Starts <c>btrfs send [-p parent] snapshot</c>; the stream is read from <see cref="BtrfsChildProcess.Output"/>.</summary>
    public BtrfsChildProcess StartSend(string snapshotPath, string? parentPath)
    {
        List<string> args = ["send", "-q"];
        if (parentPath is not null)
        {
            args.Add("-p");
            args.Add(parentPath);
        }

        args.Add(snapshotPath);
        return Start(args, redirectInput: false, redirectOutput: true);
    }

    /// <summary>Starts <c>btrfs receive directory</c>; the stream is written to <see cref="BtrfsChildProcess.Input"/>.</summary>
    public BtrfsChildProcess StartReceive(string directory) =>
        Start(["receive", "-q", directory], redirectInput: true, redirectOutput: false);

    /// <summary>
    /// Pipes <c>btrfs send [-p parent] snapshot</c> into <c>btrfs receive directory</c> on this host,
    /// through 1 MiB pipes and one pooled buffer. On failure both are stopped and the receive side's
    /// error wins (a send failing with EPIPE is only the echo of it); the caller removes what was half received.
    /// </summary>
    public async Task SendReceiveLocalAsync(string snapshotPath, string? parentPath, string directory, CancellationToken cancellationToken)
    {
        var send = StartSend(snapshotPath, parentPath);
        await using (send.ConfigureAwait(false))
        {
            var receive = StartReceive(directory);
            await using (receive.ConfigureAwait(false))
            {
                var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 20);
                Exception? copyError = null;
                try
                {
                    int n;
                    while ((n = await send.Output.ReadAsync(buffer.AsMemory(), cancellationToken).ConfigureAwait(false)) > 0)
                    {
                        await receive.Input.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                    }

                    await receive.Input.DisposeAsync().ConfigureAwait(false);
                }
                catch (IOException ex)
                {
                    copyError = ex;
                    send.Kill();
                    try
                    {
                        await receive.Input.DisposeAsync().ConfigureAwait(false);
                    }
                    catch (IOException)
                    {
                        // Receive is gone already.
                    }
                }
                finally
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                }

                await receive.WaitForSuccessAsync(cancellationToken, System.IO.Path.GetFileName(directory)).ConfigureAwait(false);
                if (copyError is not null)
                {
                    throw new BtrfsCommandException(BtrfsPath, ["send", snapshotPath], -1, $"the stream could not be copied: {copyError.Message}; {send.StandardError}");
                }

                await send.WaitForSuccessAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    internal static StorageException Classify(string command, IReadOnlyList<string> arguments, int exitCode, string stderr, string? quotaVolume)
    {
        var error = new BtrfsCommandException(command, arguments, exitCode, stderr);
        if (stderr.Contains("Disk quota exceeded", StringComparison.OrdinalIgnoreCase))
        {
            return new QuotaExceededException(quotaVolume ?? arguments[^1], null, error);
        }

        if (stderr.Contains("No space left on device", StringComparison.OrdinalIgnoreCase))
        {
            return new StorageFullException(arguments[^1], error);
        }

        return error;
    }

    private async Task<string> RunProgramAsync(string program, IReadOnlyList<string> arguments, string? quotaVolume, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var process = new Process { StartInfo = CreateStartInfo(program, arguments, redirectInput: false, redirectOutput: true) };
        Log.Running(_logger, program, string.Join(' ', arguments));
        StartOrThrow(process, program, arguments);
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            var output = await stdout.ConfigureAwait(false);
            var error = await stderr.ConfigureAwait(false);
            Count(arguments, process.ExitCode == 0);
            if (process.ExitCode != 0)
            {
                Log.Failed(_logger, program, string.Join(' ', arguments), process.ExitCode, error.Trim());
                throw Classify(program, arguments, process.ExitCode, error, quotaVolume);
            }

            return output;
        }
        catch (OperationCanceledException)
        {
            Kill(process);
            throw;
        }
    }

    private BtrfsChildProcess Start(IReadOnlyList<string> arguments, bool redirectInput, bool redirectOutput)
    {
        var process = new Process { StartInfo = CreateStartInfo(BtrfsPath, arguments, redirectInput, redirectOutput) };
        Log.Running(_logger, BtrfsPath, string.Join(' ', arguments));
        StartOrThrow(process, BtrfsPath, arguments);
        return new BtrfsChildProcess(process, BtrfsPath, arguments, this);
    }

    internal void Completed(IReadOnlyList<string> arguments, int exitCode, string stderr)
    {
        Count(arguments, exitCode == 0);
        if (exitCode != 0)
        {
            Log.Failed(_logger, BtrfsPath, string.Join(' ', arguments), exitCode, stderr.Trim());
        }
    }

    private static void Count(IReadOnlyList<string> arguments, bool ok) =>
        StorageTelemetry.BtrfsCommands.Add(1,
            new KeyValuePair<string, object?>("subcommand", arguments.Count > 0 ? arguments[0] : string.Empty),
            new KeyValuePair<string, object?>("outcome", ok ? "success" : "failure"));

    private static ProcessStartInfo CreateStartInfo(string program, IReadOnlyList<string> arguments, bool redirectInput, bool redirectOutput)
    {
        var psi = new ProcessStartInfo(program)
        {
            UseShellExecute = false,
            RedirectStandardError = true,
            RedirectStandardInput = redirectInput,
            RedirectStandardOutput = redirectOutput,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        // Stable, parseable output regardless of the host's locale.
        psi.Environment["LC_ALL"] = "C";
        return psi;
    }

    private static void StartOrThrow(Process process, string program, IReadOnlyList<string> arguments)
    {
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            process.Dispose();
            throw new BtrfsCommandException(program, arguments, -1, $"could not start '{program}': {ex.Message}. Install btrfs-progs (and e2fsprogs for chattr).");
        }
    }

    internal static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Running {Program} {Arguments}")]
        public static partial void Running(ILogger logger, string program, string arguments);

        [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "{Program} {Arguments} exited {ExitCode}: {StandardError}")]
        public static partial void Failed(ILogger logger, string program, string arguments, int exitCode, string standardError);
    }
}

/// <summary>
/// A running <c>btrfs send</c> or <c>btrfs receive</c>: its data stream, stderr collected in the
/// background (bounded), and a typed error when it exits non-zero. Disposing kills it if still running.
/// </summary>
internal sealed class BtrfsChildProcess : IAsyncDisposable
{
    private const int MaxStderr = 64 * 1024;
    private readonly Process _process;
    private readonly string _program;
    private readonly IReadOnlyList<string> _arguments;
    private readonly BtrfsRunner _runner;
    private readonly StringBuilder _stderr = new();
    private readonly Task _stderrPump;

    internal BtrfsChildProcess(Process process, string program, IReadOnlyList<string> arguments, BtrfsRunner runner)
    {
        _process = process;
        _program = program;
        _arguments = arguments;
        _runner = runner;
        _stderrPump = PumpStderrAsync();
        if (process.StartInfo.RedirectStandardOutput)
        {
            PipeSize.TryGrow(process.StandardOutput.BaseStream);
        }

        if (process.StartInfo.RedirectStandardInput)
        {
            PipeSize.TryGrow(process.StandardInput.BaseStream);
        }
    }

    /// <summary>The process's standard output (send).</summary>
    public Stream Output => _process.StandardOutput.BaseStream;

    /// <summary>The process's standard input (receive).</summary>
    public Stream Input => _process.StandardInput.BaseStream;

    public int ProcessId => _process.Id;

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

    /// <summary>Waits for exit; throws the classified error on a non-zero exit code.</summary>
    public async Task WaitForSuccessAsync(CancellationToken cancellationToken, string? quotaVolume = null)
    {
        await _process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        await _stderrPump.ConfigureAwait(false);
        _runner.Completed(_arguments, _process.ExitCode, StandardError);
        if (_process.ExitCode != 0)
        {
            throw BtrfsRunner.Classify(_program, _arguments, _process.ExitCode, StandardError, quotaVolume);
        }
    }

    public void Kill() => BtrfsRunner.Kill(_process);

    public async ValueTask DisposeAsync()
    {
        Kill();
        try
        {
            await _process.WaitForExitAsync().ConfigureAwait(false);
            await _stderrPump.ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }

        _process.Dispose();
    }

    private async Task PumpStderrAsync()
    {
        var buffer = new char[4096];
        var reader = _process.StandardError;
        try
        {
            int n;
            while ((n = await reader.ReadAsync(buffer.AsMemory()).ConfigureAwait(false)) > 0)
            {
                lock (_stderr)
                {
                    if (_stderr.Length < MaxStderr)
                    {
                        _stderr.Append(buffer, 0, Math.Min(n, MaxStderr - _stderr.Length));
                    }
                }
            }
        }
        catch (IOException)
        {
            // The process was killed.
        }
        catch (ObjectDisposedException)
        {
        }
    }
}

/// <summary>
/// Grows a pipe to 1 MiB (<c>F_SETPIPE_SZ</c>) so <c>btrfs send</c>/<c>receive</c> hand over a whole
/// chunk per wake-up instead of 64 KiB; without it the send process stalls on a full pipe whenever
/// this process is not scheduled, which halves throughput on a busy host.
/// </summary>
internal static class PipeSize
{
    private const int FSetPipeSize = 1031;
    private const int Target = 1 << 20;

    public static void TryGrow(Stream stream)
    {
        if (!OperatingSystem.IsLinux() || stream is not System.IO.Pipes.PipeStream pipe)
        {
            return;
        }

        try
        {
            _ = Libc.Fcntl(pipe.SafePipeHandle, FSetPipeSize, Target);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc/musl: keep the default pipe size.
        }
    }
}

/// <summary>The few libc calls .NET does not expose.</summary>
internal static class Libc
{
    /// <summary><c>fcntl(fd, command, argument)</c>; -1 on failure (errno in <see cref="System.Runtime.InteropServices.Marshal.GetLastPInvokeError"/>).</summary>
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    [System.Runtime.InteropServices.DefaultDllImportSearchPaths(System.Runtime.InteropServices.DllImportSearchPath.SafeDirectories)]
    public static extern int Fcntl(System.Runtime.InteropServices.SafeHandle fd, int command, int argument);

    /// <summary><c>statx(dirfd, path, flags, mask, buffer)</c> into a 256-byte <c>struct statx</c> (same layout on every architecture).</summary>
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    [System.Runtime.InteropServices.DefaultDllImportSearchPaths(System.Runtime.InteropServices.DllImportSearchPath.SafeDirectories)]
    public static extern int Statx(int directory, [System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte[] buffer);
}
