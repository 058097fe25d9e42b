using System.Buffers;
using System.Text;
using System.Text.Json;
using DeCloud.Virtualization.Libvirt;

namespace DeCloud.Virtualization.Readiness;

/// <summary>The result of a command run in the guest.</summary>
/// <param name="ExitCode">The exit code (or -1 when killed by a signal).</param>
/// <param name="StandardOutput">Captured standard output (UTF-8, truncated by the agent at 16 MiB).</param>
/// <param name="StandardError">Captured standard error.</param>
public sealed record GuestCommandResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>What readiness checks need from a guest; implemented by <see cref="GuestAgent"/> (and by fakes in tests).</summary>
public interface IGuestAgent
{
    /// <summary>True when the agent answers a ping.</summary>
    Task<bool> PingAsync(CancellationToken cancellationToken = default);

    /// <summary>Reads a whole file of at most <paramref name="maxBytes"/>; null when it does not exist.</summary>
    Task<byte[]?> ReadFileAsync(string path, int maxBytes, CancellationToken cancellationToken = default);

    /// <summary>Runs <paramref name="path"/> with <paramref name="arguments"/> and waits for it to exit.</summary>
    Task<GuestCommandResult> ExecuteAsync(string path, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken = default);
}

/// <summary>
/// The qemu guest agent of a domain, through <c>virDomainQemuAgentCommand</c>: ping, file reads, command
/// execution. No network path to the guest is needed. Agent-side errors (a missing file, a command that cannot
/// start) become <see cref="GuestAgentException"/>; an agent that is not connected or does not answer is a
/// <see cref="LibvirtException"/> with <see cref="LibvirtException.AgentUnresponsive"/>.
/// </summary>
public sealed class GuestAgent : IGuestAgent
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(10);
    private readonly LibvirtDomain domain;
    private readonly TimeProvider timeProvider;

    /// <summary>Talks to <paramref name="domain"/>'s agent; <paramref name="timeProvider"/> paces polling.</summary>
    public GuestAgent(LibvirtDomain domain, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(domain);
        this.domain = domain;
        this.timeProvider = timeProvider ?? TimeProvider.System;
    }

    /// <inheritdoc />
    public async Task<bool> PingAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await CommandAsync("guest-ping", null, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (LibvirtException ex) when (ex.Code is LibvirtException.AgentUnresponsive or LibvirtException.OperationInvalid)
        {
            return false;
        }
    }

    /// <summary>Polls until the agent answers; throws <see cref="TimeoutException"/> after <paramref name="timeout"/>.</summary>
    public async Task WaitUntilConnectedAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var deadline = timeProvider.GetUtcNow() + timeout;
        while (!await PingAsync(cancellationToken).ConfigureAwait(false))
        {
            if (timeProvider.GetUtcNow() >= deadline)
            {
                throw new TimeoutException($"The guest agent of {domain.Name} did not answer within {timeout}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), timeProvider, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async Task<byte[]?> ReadFileAsync(string path, int maxBytes, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        JsonElement opened;
        try
        {
            opened = await CommandAsync("guest-file-open", w => { w.WriteString("path", path); w.WriteString("mode", "r"); }, cancellationToken).ConfigureAwait(false);
        }
        catch (LibvirtException ex) when (ex.LibvirtMessage.Contains("No such file or directory", StringComparison.Ordinal))
        {
            return null;
        }

        var handle = opened.GetInt64();
        try
        {
            var buffer = new ArrayBufferWriter<byte>();
            while (true)
            {
                var chunk = await CommandAsync("guest-file-read", w => { w.WriteNumber("handle", handle); w.WriteNumber("count", 65536); }, cancellationToken).ConfigureAwait(false);
                var bytes = chunk.GetProperty("buf-b64").GetBytesFromBase64();
                if (buffer.WrittenCount + bytes.Length > maxBytes)
                {
                    throw new GuestAgentException("guest-file-read", $"'{path}' is larger than {maxBytes} bytes.");
                }

                buffer.Write(bytes);
                if (chunk.GetProperty("eof").GetBoolean() || bytes.Length == 0)
                {
                    return buffer.WrittenSpan.ToArray();
                }
            }
        }
        finally
        {
            await CommandAsync("guest-file-close", w => w.WriteNumber("handle", handle), CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async Task<GuestCommandResult> ExecuteAsync(string path, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(arguments);
        JsonElement started;
        try
        {
            started = await CommandAsync("guest-exec", w =>
            {
                w.WriteString("path", path);
                w.WriteStartArray("arg");
                foreach (var a in arguments)
                {
                    w.WriteStringValue(a);
                }

                w.WriteEndArray();
                w.WriteBoolean("capture-output", true);
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (LibvirtException ex) when (ex.LibvirtMessage.Contains("Failed to execute child process", StringComparison.Ordinal))
        {
            throw new GuestAgentException("guest-exec", ex.LibvirtMessage, ex);
        }

        var pid = started.GetProperty("pid").GetInt64();
        var deadline = timeProvider.GetUtcNow() + timeout;
        while (true)
        {
            var status = await CommandAsync("guest-exec-status", w => w.WriteNumber("pid", pid), cancellationToken).ConfigureAwait(false);
            if (status.GetProperty("exited").GetBoolean())
            {
                var exit = status.TryGetProperty("exitcode", out var code) ? code.GetInt32() : -1;
                return new GuestCommandResult(exit, Decode(status, "out-data"), Decode(status, "err-data"));
            }

            if (timeProvider.GetUtcNow() >= deadline)
            {
                throw new TimeoutException($"'{path}' in {domain.Name} did not exit within {timeout}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), timeProvider, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Asks the agent to power the guest off.</summary>
    public Task ShutdownAsync(CancellationToken cancellationToken = default) => domain.ShutdownAsync(ShutdownMode.GuestAgent, cancellationToken);

    private static string Decode(JsonElement status, string property) =>
        status.TryGetProperty(property, out var data) ? Encoding.UTF8.GetString(data.GetBytesFromBase64()) : string.Empty;

    private async Task<JsonElement> CommandAsync(string command, Action<Utf8JsonWriter>? arguments, CancellationToken cancellationToken)
    {
        var json = BuildCommand(command, arguments);
        var reply = await domain.AgentCommandAsync(json, CommandTimeout, cancellationToken).ConfigureAwait(false);
        return ParseReply(command, reply);
    }

    internal static string BuildCommand(string command, Action<Utf8JsonWriter>? arguments)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("execute", command);
            if (arguments is not null)
            {
                w.WriteStartObject("arguments");
                arguments(w);
                w.WriteEndObject();
            }

            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    internal static JsonElement ParseReply(string command, string reply)
    {
        try
        {
            using var doc = JsonDocument.Parse(reply);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("return", out var value))
            {
                return value.Clone();
            }

            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var error))
            {
                throw new GuestAgentException(command, error.ToString());
            }

            throw new GuestAgentException(command, "the reply has neither 'return' nor 'error'.");
        }
        catch (JsonException ex)
        {
            throw new GuestAgentException(command, $"the reply is not JSON: {ex.Message}", ex);
        }
    }
}
