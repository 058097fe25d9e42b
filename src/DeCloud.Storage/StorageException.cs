namespace DeCloud.Storage;

/// <summary>
/// Base of every error raised by DeCloud.Storage. Catch this to handle any storage failure;
/// <see cref="IsTransient"/> says whether retrying the same operation may succeed.
/// </summary>
public class StorageException : Exception
{
    internal StorageException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }

    /// <summary>True when the same operation may succeed if retried (a dropped connection, for example).</summary>
    public virtual bool IsTransient => false;
}

/// <summary>A <c>btrfs</c> command exited with an error. Carries the arguments, exit code and standard error.</summary>
public sealed class BtrfsCommandException : StorageException
{
    internal BtrfsCommandException(string command, IReadOnlyList<string> arguments, int exitCode, string standardError)
        : base($"'{command} {string.Join(' ', arguments)}' exited {exitCode}: {Trim(standardError)}")
    {
        Command = command;
        Arguments = arguments;
        ExitCode = exitCode;
        StandardError = standardError;
    }

    /// <summary>The program that failed (<c>btrfs</c>, or <c>chattr</c> for the images directory).</summary>
    public string Command { get; }

    /// <summary>The arguments it was given.</summary>
    public IReadOnlyList<string> Arguments { get; }

    /// <summary>The exit code (negative when the process was killed).</summary>
    public int ExitCode { get; }

    /// <summary>What the command printed on standard error.</summary>
    public string StandardError { get; }

    private static string Trim(string text)
    {
        var t = text.Trim();
        return t.Length == 0 ? "(no output on stderr)" : t;
    }
}

/// <summary>A volume (subvolume or snapshot) that was named does not exist.</summary>
public sealed class VolumeNotFoundException : StorageException
{
    internal VolumeNotFoundException(string volumeName, string root)
        : base($"No Btrfs subvolume named '{volumeName}' exists under '{root}'. List the volumes to see what exists.")
    {
        VolumeName = volumeName;
    }

    /// <summary>The name that was looked up.</summary>
    public string VolumeName { get; }
}

/// <summary>A volume with the requested name already exists.</summary>
public sealed class VolumeExistsException : StorageException
{
    internal VolumeExistsException(string volumeName, string root)
        : base($"A subvolume or directory named '{volumeName}' already exists under '{root}'. Pick another name or delete it first.")
    {
        VolumeName = volumeName;
    }

    /// <summary>The name that is taken.</summary>
    public string VolumeName { get; }
}

/// <summary>A write was refused because the volume's qgroup limit is reached (EDQUOT).</summary>
public sealed class QuotaExceededException : StorageException
{
    internal QuotaExceededException(string volumeName, long? limitBytes, Exception? innerException = null)
        : base($"The quota of volume '{volumeName}' is exhausted" +
               (limitBytes is { } l ? $" (limit {l} bytes)" : string.Empty) +
               ". Raise the limit with SetQuotaLimitAsync or free space in the volume.", innerException)
    {
        VolumeName = volumeName;
        LimitBytes = limitBytes;
    }

    /// <summary>The volume whose quota is exhausted.</summary>
    public string VolumeName { get; }

    /// <summary>Its referenced-bytes limit, when known.</summary>
    public long? LimitBytes { get; }
}

/// <summary>The Btrfs filesystem has no space left (ENOSPC).</summary>
public sealed class StorageFullException : StorageException
{
    internal StorageFullException(string path, Exception? innerException = null)
        : base($"The filesystem holding '{path}' has no space left. Free space or use another destination.", innerException)
    {
        Path = path;
    }

    /// <summary>The path whose filesystem is full.</summary>
    public string Path { get; }
}
