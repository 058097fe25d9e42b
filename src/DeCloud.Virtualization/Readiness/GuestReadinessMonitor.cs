using System.Diagnostics.Metrics;
using System.Text;
using DeCloud.Virtualization.Libvirt;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Virtualization.Readiness;

/// <summary>
/// Waits for a guest's services to become ready, each with its own check and timeout, through the guest agent.
/// Every state change is raised as <see cref="Changed"/>; <see cref="GetSnapshot"/> gives the current states for
/// heartbeats. Services start <see cref="ReadinessState.Pending"/> and end <see cref="ReadinessState.Ready"/>,
/// <see cref="ReadinessState.Failed"/> or <see cref="ReadinessState.TimedOut"/>.
/// </summary>
public sealed class GuestReadinessMonitor
{
    internal const string CloudInitMarker = "/var/lib/cloud/instance/boot-finished";
    private static readonly Meter Meter = new("DeCloud.Virtualization");
    private static readonly Counter<long> Transitions = Meter.CreateCounter<long>("decloud.virtualization.readiness.transitions", "{transition}", "Service readiness state changes.");

    private readonly IGuestAgent agent;
    private readonly ServiceCheck[] checks;
    private readonly ServiceReadiness[] states;
    private readonly TimeProvider timeProvider;
    private readonly ILogger logger;
    private readonly Lock gate = new();

    /// <summary>Creates a monitor; <paramref name="checks"/> are validated here (names must be unique).</summary>
    public GuestReadinessMonitor(IGuestAgent agent, IEnumerable<ServiceCheck> checks, TimeProvider? timeProvider = null, ILogger<GuestReadinessMonitor>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(agent);
        ArgumentNullException.ThrowIfNull(checks);
        this.agent = agent;
        this.checks = [.. checks.Select(c => (c ?? throw new ArgumentException("A service check is null.", nameof(checks))).Validate())];
        var duplicate = this.checks.GroupBy(c => c.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"Service '{duplicate.Key}' is listed twice; names must be unique.", nameof(checks));
        }

        this.timeProvider = timeProvider ?? TimeProvider.System;
        this.logger = logger ?? NullLogger<GuestReadinessMonitor>.Instance;
        var now = this.timeProvider.GetUtcNow();
        states = [.. this.checks.Select(c => new ServiceReadiness(c.Name, c.ResolveKind(), ReadinessState.Pending, "not checked yet", now))];
    }

    /// <summary>Raised on every state change (on the checking task; keep handlers short).</summary>
    public event EventHandler<ServiceReadinessChangedEventArgs>? Changed;

    /// <summary>The current state of every service.</summary>
    public IReadOnlyList<ServiceReadiness> GetSnapshot()
    {
        lock (gate)
        {
            return [.. states];
        }
    }

    /// <summary>Checks every service concurrently until each is settled; returns the final snapshot.</summary>
    public async Task<IReadOnlyList<ServiceReadiness>> RunAsync(CancellationToken cancellationToken = default)
    {
        await Task.WhenAll(checks.Select((c, i) => RunOneAsync(i, c, cancellationToken))).ConfigureAwait(false);
        return GetSnapshot();
    }

    private async Task RunOneAsync(int index, ServiceCheck check, CancellationToken cancellationToken)
    {
        var started = timeProvider.GetUtcNow();
        while (true)
        {
            var (outcome, detail) = await AttemptAsync(check, cancellationToken).ConfigureAwait(false);
            if (outcome == ReadinessState.Ready || outcome == ReadinessState.Failed)
            {
                Set(index, outcome, detail);
                return;
            }

            if (timeProvider.GetUtcNow() - started >= check.Timeout)
            {
                Set(index, ReadinessState.TimedOut, $"not ready after {check.Timeout}: {detail}");
                return;
            }

            Set(index, ReadinessState.Pending, detail);
            await Task.Delay(check.Interval, timeProvider, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<(ReadinessState Outcome, string Detail)> AttemptAsync(ServiceCheck check, CancellationToken cancellationToken)
    {
        try
        {
            switch (check.ResolveKind())
            {
                case ReadinessCheckKind.CloudInitDone:
                    return await agent.ReadFileAsync(CloudInitMarker, 4096, cancellationToken).ConfigureAwait(false) is null
                        ? (ReadinessState.Pending, "cloud-init has not finished")
                        : (ReadinessState.Ready, "cloud-init finished");

                case ReadinessCheckKind.TcpPort:
                    var port = check.Port!.Value;
                    foreach (var table in (string[])["/proc/net/tcp", "/proc/net/tcp6"])
                    {
                        var content = await agent.ReadFileAsync(table, 4 * 1024 * 1024, cancellationToken).ConfigureAwait(false);
                        if (content is not null && ProcNetTcp.IsListening(Encoding.ASCII.GetString(content), port))
                        {
                            return (ReadinessState.Ready, $"listening on TCP {port}");
                        }
                    }

                    return (ReadinessState.Pending, $"nothing listens on TCP {port}");

                case ReadinessCheckKind.HttpGet:
                    var url = check.HttpUrl(string.Equals(check.Protocol, "https", StringComparison.OrdinalIgnoreCase));
                    // curl when the guest has it, busybox/GNU wget otherwise; both fail on HTTP errors.
                    var script = $"if command -v curl >/dev/null 2>&1; then curl -fsSk -o /dev/null -m 5 '{url}'; else wget -q -O /dev/null -T 5 '{url}'; fi";
                    var http = await agent.ExecuteAsync("/bin/sh", ["-c", script], TimeSpan.FromSeconds(15), cancellationToken).ConfigureAwait(false);
                    return http.ExitCode == 0
                        ? (ReadinessState.Ready, $"GET {url} succeeded")
                        : (ReadinessState.Pending, $"GET {url} failed (exit {http.ExitCode}): {Trim(http.StandardError)}");

                default:
                    var result = await agent.ExecuteAsync(check.CommandPath!, check.CommandArguments, check.Timeout, cancellationToken).ConfigureAwait(false);
                    return result.ExitCode == 0
                        ? (ReadinessState.Ready, $"{check.CommandPath} exited 0")
                        : (ReadinessState.Pending, $"{check.CommandPath} exited {result.ExitCode}: {Trim(result.StandardError)}");
            }
        }
        catch (LibvirtException ex) when (ex.IsDomainNotFound || ex.Code == LibvirtException.OperationInvalid)
        {
            return (ReadinessState.Failed, ex.LibvirtMessage);
        }
        catch (LibvirtException ex)
        {
            return (ReadinessState.Pending, ex.LibvirtMessage);
        }
        catch (GuestAgentException ex) when (ex.Command == "guest-exec")
        {
            return (ReadinessState.Failed, ex.Message);
        }
        catch (GuestAgentException ex)
        {
            return (ReadinessState.Pending, ex.Message);
        }
        catch (TimeoutException ex)
        {
            return (ReadinessState.Pending, ex.Message);
        }
    }

    private void Set(int index, ReadinessState state, string detail)
    {
        ServiceReadiness next;
        ReadinessState previous;
        lock (gate)
        {
            previous = states[index].State;
            if (previous == state)
            {
                states[index] = states[index] with { Detail = detail };
                return;
            }

            next = states[index] with { State = state, Detail = detail, Since = timeProvider.GetUtcNow() };
            states[index] = next;
        }

        Transitions.Add(1, new KeyValuePair<string, object?>("state", state.ToString()));
        Log.StateChanged(logger, next.Name, previous.ToString(), state.ToString(), detail);
        Changed?.Invoke(this, new ServiceReadinessChangedEventArgs(next, previous));
    }

    private static string Trim(string text) => text.Length > 200 ? text[..200] : text.Trim();
}

internal static partial class Log
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Service {Service}: {Previous} -> {State} ({Detail})")]
    public static partial void StateChanged(ILogger logger, string service, string previous, string state, string detail);
}
