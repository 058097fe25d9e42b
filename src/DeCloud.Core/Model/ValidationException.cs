namespace DeCloud.Core.Model;

/// <summary>The base of every exception that DeCloud.Core throws for a refused request.</summary>
public abstract class DeCloudException : Exception
{
    private protected DeCloudException(string message, Exception? inner = null) : base(message, inner)
    {
    }
}

/// <summary>
/// Input was malformed or out of range. <see cref="Field"/> names what was wrong; nothing stored
/// was changed.
/// </summary>
public sealed class DeCloudValidationException : DeCloudException
{
    internal DeCloudValidationException(string field, string message) : base($"{field}: {message}") => Field = field;

    /// <summary>The field (or argument) that was rejected, e.g. <c>resources.memoryMiB</c>.</summary>
    public string Field { get; }
}

/// <summary>Validation helpers that throw <see cref="DeCloudValidationException"/>.</summary>
internal static class Validate
{
    public static DeCloudValidationException Fail(string field, string message) => new(field, message);

    public static void Range(long value, long min, long max, string field)
    {
        if (value < min || value > max)
        {
            throw new DeCloudValidationException(field, $"{value} is out of range; expected {min}..{max}.");
        }
    }
}
