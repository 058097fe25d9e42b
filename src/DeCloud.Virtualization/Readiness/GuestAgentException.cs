namespace DeCloud.Virtualization.Readiness;

/// <summary>The qemu guest agent answered with an error or with a reply we could not read.</summary>
public sealed class GuestAgentException : VirtualizationException
{
    internal GuestAgentException(string command, string message, Exception? innerException = null)
        : base($"Guest agent command '{command}' failed: {message}", innerException)
    {
        Command = command;
    }

    /// <summary>The agent command, e.g. <c>guest-exec</c>.</summary>
    public string Command { get; }
}
