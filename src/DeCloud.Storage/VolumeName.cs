using System.Buffers;

namespace DeCloud.Storage;

/// <summary>
/// Rules for volume, snapshot and tag names. A name is one path component under the volumes root:
/// 1 to 200 characters from <c>[A-Za-z0-9._@+-]</c>, not starting with a dot (so <c>.</c>, <c>..</c>
/// and hidden names cannot be used), so no name can reach outside the root or hide a NUL.
/// </summary>
public static class VolumeName
{
    /// <summary>The longest accepted name (Btrfs allows 255; the rest is left for snapshot suffixes).</summary>
    public const int MaxLength = 200;

    private static readonly SearchValues<char> Allowed =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@+-");

    /// <summary>Returns null when <paramref name="name"/> is valid, else a sentence saying what is wrong.</summary>
    public static string? Check(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "a volume name must not be empty";
        }

        if (name.Length > MaxLength)
        {
            return $"a volume name must be at most {MaxLength} characters (got {name.Length})";
        }

        if (name[0] == '.')
        {
            return $"volume name '{Printable(name)}' must not start with '.' ('.', '..' and hidden names are refused)";
        }

        var bad = name.AsSpan().IndexOfAnyExcept(Allowed);
        if (bad >= 0)
        {
            var c = name[bad];
            var what = c switch
            {
                '/' => "'/' (a name is one path component)",
                '\0' => "NUL",
                _ => $"U+{(int)c:X4}",
            };
            return $"volume name '{Printable(name)}' contains {what} at index {bad}; use only letters, digits and . _ @ + -";
        }

        return null;
    }

    /// <summary>True when <paramref name="name"/> follows the rules.</summary>
    public static bool IsValid(string? name) => Check(name) is null;

    /// <summary>Throws <see cref="ArgumentException"/> naming the parameter and the problem unless <paramref name="name"/> is valid.</summary>
    public static void Validate(string? name, string paramName)
    {
        if (Check(name) is { } problem)
        {
            throw new ArgumentException($"Invalid {paramName}: {problem}.", paramName);
        }
    }

    private static string Printable(string s) => s.Replace("\0", "\\0", StringComparison.Ordinal);
}
