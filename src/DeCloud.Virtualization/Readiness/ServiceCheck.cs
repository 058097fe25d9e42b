using System.Globalization;

namespace DeCloud.Virtualization.Readiness;

/// <summary>How a service's readiness is checked inside the guest (always through the guest agent).</summary>
public enum ReadinessCheckKind
{
    /// <summary>cloud-init finished: <c>/var/lib/cloud/instance/boot-finished</c> exists.</summary>
    CloudInitDone,

    /// <summary>Something listens on the TCP port (read from <c>/proc/net/tcp</c> and <c>/proc/net/tcp6</c>).</summary>
    TcpPort,

    /// <summary>An HTTP GET of <c>http://127.0.0.1:port/path</c> inside the guest returns a 2xx/3xx status.</summary>
    HttpGet,

    /// <summary>A command exits 0.</summary>
    Command,
}

/// <summary>Where a service stands.</summary>
public enum ReadinessState
{
    /// <summary>Not ready yet; still being checked.</summary>
    Pending,

    /// <summary>The check passed.</summary>
    Ready,

    /// <summary>The check cannot pass: the domain stopped or vanished, or the check itself cannot run (missing executable).</summary>
    Failed,

    /// <summary>The check kept failing until the service's timeout.</summary>
    TimedOut,
}

/// <summary>
/// One service to wait for. When <see cref="Kind"/> is not given it is inferred from <see cref="Protocol"/>:
/// <c>http</c>/<c>https</c> → <see cref="ReadinessCheckKind.HttpGet"/>; any other protocol with a port →
/// <see cref="ReadinessCheckKind.TcpPort"/>; a command → <see cref="ReadinessCheckKind.Command"/>; nothing →
/// <see cref="ReadinessCheckKind.CloudInitDone"/>.
/// </summary>
public sealed record ServiceCheck
{
    /// <summary>The service name (unique per guest).</summary>
    public required string Name { get; init; }

    /// <summary>The check; inferred when null.</summary>
    public ReadinessCheckKind? Kind { get; init; }

    /// <summary>The service's protocol (<c>http</c>, <c>https</c>, <c>tcp</c>, <c>ssh</c>, ...), used to infer the check.</summary>
    public string? Protocol { get; init; }

    /// <summary>The port inside the guest (1..65535).</summary>
    public int? Port { get; init; }

    /// <summary>The HTTP path (default <c>/</c>).</summary>
    public string HttpPath { get; init; } = "/";

    /// <summary>The executable for <see cref="ReadinessCheckKind.Command"/>, e.g. <c>/usr/bin/systemctl</c>.</summary>
    public string? CommandPath { get; init; }

    /// <summary>The command's arguments.</summary>
    public IReadOnlyList<string> CommandArguments { get; init; } = [];

    /// <summary>How long the service may take to become ready (default 5 minutes).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The pause between attempts (default 2 s).</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The check that will run.</summary>
    public ReadinessCheckKind ResolveKind()
    {
        if (Kind is { } kind)
        {
            return kind;
        }

        if (Protocol is not null && (Protocol.Equals("http", StringComparison.OrdinalIgnoreCase) || Protocol.Equals("https", StringComparison.OrdinalIgnoreCase)))
        {
            return ReadinessCheckKind.HttpGet;
        }

        if (Port is not null)
        {
            return ReadinessCheckKind.TcpPort;
        }

        return CommandPath is not null ? ReadinessCheckKind.Command : ReadinessCheckKind.CloudInitDone;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad field.</summary>
    public ServiceCheck Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
        {
            throw new ArgumentException("ServiceCheck.Name is empty; name the service.", nameof(Name));
        }

        if (Timeout <= TimeSpan.Zero || Timeout > TimeSpan.FromDays(1))
        {
            throw new ArgumentOutOfRangeException(nameof(Timeout), Timeout, $"ServiceCheck.Timeout of '{Name}' must be positive and at most a day.");
        }

        if (Interval <= TimeSpan.Zero || Interval > Timeout)
        {
            throw new ArgumentOutOfRangeException(nameof(Interval), Interval, $"ServiceCheck.Interval of '{Name}' must be positive and not above the timeout.");
        }

        var kind = ResolveKind();
        if (kind is ReadinessCheckKind.TcpPort or ReadinessCheckKind.HttpGet && Port is not (>= 1 and <= 65535))
        {
            throw new ArgumentOutOfRangeException(nameof(Port), Port, $"ServiceCheck.Port of '{Name}' must be 1..65535 for a {kind} check.");
        }

        if (kind == ReadinessCheckKind.Command && (CommandPath is null || !CommandPath.StartsWith('/')))
        {
            throw new ArgumentException($"ServiceCheck.CommandPath of '{Name}' must be an absolute path in the guest for a Command check.", nameof(CommandPath));
        }

        if (kind == ReadinessCheckKind.HttpGet && (!HttpPath.StartsWith('/') || HttpPath.Any(char.IsWhiteSpace) || HttpPath.Contains('\'', StringComparison.Ordinal)))
        {
            throw new ArgumentException($"ServiceCheck.HttpPath '{HttpPath}' of '{Name}' must start with '/' and contain no spaces or quotes.", nameof(HttpPath));
        }

        return this;
    }

    internal string HttpUrl(bool tls) => string.Create(CultureInfo.InvariantCulture, $"{(tls ? "https" : "http")}://127.0.0.1:{Port}{HttpPath}");
}

/// <summary>The readiness of one service at one moment.</summary>
/// <param name="Name">The service.</param>
/// <param name="Kind">The check used.</param>
/// <param name="State">Where it stands.</param>
/// <param name="Detail">Why (the last failure, or what passed).</param>
/// <param name="Since">When it entered <paramref name="State"/>.</param>
public readonly record struct ServiceReadiness(string Name, ReadinessCheckKind Kind, ReadinessState State, string Detail, DateTimeOffset Since);

/// <summary>A service changed state.</summary>
public sealed class ServiceReadinessChangedEventArgs : EventArgs
{
    internal ServiceReadinessChangedEventArgs(ServiceReadiness readiness, ReadinessState previous)
    {
        Readiness = readiness;
        Previous = previous;
    }

    /// <summary>The new readiness.</summary>
    public ServiceReadiness Readiness { get; }

    /// <summary>The state before.</summary>
    public ReadinessState Previous { get; }
}
