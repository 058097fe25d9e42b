namespace DeCloud.Core.Model;

/// <summary>Names of regions and tags: lower-case letters, digits and <c>-</c>, 1-32 characters (tags up to 64).</summary>
public static class Labels
{
    /// <summary>Validates and normalizes a region name (e.g. <c>eu-west</c>).</summary>
    public static string Region(string? region, string field = "region") => Check(region, 32, field);

    /// <summary>Validates and normalizes a tag (e.g. <c>ssd</c>, <c>gpu-nvidia</c>).</summary>
    public static string Tag(string? tag, string field = "tags") => Check(tag, 64, field);

    /// <summary>Validates every tag; at most 64 distinct tags.</summary>
    public static IReadOnlySet<string> Tags(IEnumerable<string>? tags, string field = "tags")
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var t in tags ?? [])
        {
            set.Add(Tag(t, field));
        }

        if (set.Count > 64)
        {
            throw Validate.Fail(field, $"{set.Count} tags given; at most 64 are allowed.");
        }

        return set;
    }

    private static string Check(string? value, int max, string field)
    {
        if (string.IsNullOrEmpty(value) || value.Length > max)
        {
            throw Validate.Fail(field, $"'{value}' must be 1-{max} characters.");
        }

        var lower = value.ToLowerInvariant();
        foreach (var c in lower)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_' or '.'))
            {
                throw Validate.Fail(field, $"'{value}' may contain only letters, digits, '-', '_' and '.'.");
            }
        }

        return lower;
    }
}
