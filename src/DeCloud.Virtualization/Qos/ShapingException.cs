namespace DeCloud.Virtualization.Qos;

/// <summary>A <c>tc</c>/<c>ip</c> command of the bandwidth shaper failed; the message carries the command's own error.</summary>
public sealed class ShapingException : VirtualizationException
{
    internal ShapingException(string command, int exitCode, string error)
        : base($"'{command}' exited {exitCode}: {error.Trim()}")
    {
        CommandLine = command;
        ExitCode = exitCode;
    }

    /// <summary>The command that failed.</summary>
    public string CommandLine { get; }

    /// <summary>Its exit code.</summary>
    public int ExitCode { get; }
}
