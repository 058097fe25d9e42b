using System.Globalization;
using System.Text;
using System.Text.Json;
using DeCloud.Cli.Client;

namespace DeCloud.Cli;

/// <summary>Exit codes of <c>decloud</c>, for scripts.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>Something failed that is not covered below.</summary>
    public const int Failure = 1;

    /// <summary>Bad arguments or a bad file.</summary>
    public const int Usage = 2;

    /// <summary>Not signed in, or the session expired.</summary>
    public const int Unauthorized = 3;

    /// <summary>The VM or node does not exist (or is not yours).</summary>
    public const int NotFound = 4;

    /// <summary>The request conflicts with the current state or no capacity is free.</summary>
    public const int Conflict = 5;

    /// <summary>The orchestrator could not be reached.</summary>
    public const int Unreachable = 69;

    public static int FromStatus(int status) => status switch
    {
        0 => Unreachable,
        400 or 422 => Usage,
        401 or 403 => Unauthorized,
        404 => NotFound,
        409 or 503 => Conflict,
        _ => Failure,
    };
}

/// <summary>An error the CLI reports with a message and exit code (no stack trace).</summary>
internal sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>Where a signed-in session is kept between commands (<c>~/.decloud/session.json</c>).</summary>
internal sealed record CliSession(string Url, string Token, string Address, DateTimeOffset? ExpiresAt)
{
    public static string DefaultPath =>
        Environment.GetEnvironmentVariable("DECLOUD_SESSION_FILE")
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".decloud", "session.json");

    public static CliSession? Load(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<CliSession>(File.ReadAllText(path), OrchestratorClient.Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, OrchestratorClient.Json));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>Plain-text tables for terminals.</summary>
internal static class Table
{
    public static string Render(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = new List<IReadOnlyList<string>> { headers };
        all.AddRange(rows);
        var widths = new int[headers.Count];
        foreach (var r in all)
        {
            for (var i = 0; i < widths.Length && i < r.Count; i++)
            {
                widths[i] = Math.Max(widths[i], r[i].Length);
            }
        }

        var sb = new StringBuilder();
        for (var n = 0; n < all.Count; n++)
        {
            var r = all[n];
            for (var i = 0; i < widths.Length; i++)
            {
                var cell = i < r.Count ? r[i] : string.Empty;
                sb.Append(i == widths.Length - 1 ? cell : cell.PadRight(widths[i] + 2));
            }

            sb.Append('\n');
            if (n == 0)
            {
                sb.Append(new string('-', widths.Sum() + (2 * (widths.Length - 1)))).Append('\n');
            }
        }

        return sb.ToString();
    }

    public static string Short(string id) => id.Length > 12 ? id[..12] : id;

    public static string Invariant(long v) => v.ToString(CultureInfo.InvariantCulture);
}
