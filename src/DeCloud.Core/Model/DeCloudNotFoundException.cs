namespace DeCloud.Core.Model;

/// <summary>
/// A request named something that does not exist (an unregistered node, an unknown VM).
/// <see cref="Field"/> names the argument; nothing stored was changed.
/// </summary>
public sealed class DeCloudNotFoundException : DeCloudException
{
    internal DeCloudNotFoundException(string field, string value, string what)
        : base($"{field}: '{value}' is not a known {what}.")
    {
        Field = field;
        Value = value;
    }

    /// <summary>The field that named the missing thing, e.g. <c>nodeId</c>.</summary>
    public string Field { get; }

    /// <summary>The value that was not found.</summary>
    public string Value { get; }
}
