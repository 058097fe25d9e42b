using System.Globalization;
using System.Text;

namespace DeCloud.Storage.Backups;

/// <summary>
/// Which snapshots to keep, written as in btrbk: <c>24h 14d 4w 6m</c> keeps the first snapshot of each
/// of the last 24 hours, 14 days, 4 weeks and 6 months. Units: <c>h</c> hourly, <c>d</c> daily,
/// <c>w</c> weekly (ISO weeks, from Monday), <c>m</c> monthly, <c>y</c> yearly; a count of <c>*</c>
/// keeps every period (<c>*m</c>: one per month forever). <c>latest:N</c> always keeps the N newest
/// snapshots (default 1: the newest is the parent of the next incremental send). A lone <c>*</c>
/// keeps everything. Periods are UTC. Each unit may appear once; anything else is rejected.
/// </summary>
public sealed class RetentionPolicy
{
    /// <summary>Largest count accepted for a unit or for <c>latest:</c>.</summary>
    public const int MaxCount = 100_000;

    private RetentionPolicy(int hourly, int daily, int weekly, int monthly, int yearly, int latest, bool keepAll)
    {
        Hourly = hourly;
        Daily = daily;
        Weekly = weekly;
        Monthly = monthly;
        Yearly = yearly;
        Latest = latest;
        KeepAll = keepAll;
    }

    /// <summary>Hours kept (first snapshot of each); <see cref="int.MaxValue"/> for <c>*</c>.</summary>
    public int Hourly { get; }

    /// <summary>Days kept.</summary>
    public int Daily { get; }

    /// <summary>ISO weeks kept.</summary>
    public int Weekly { get; }

    /// <summary>Months kept.</summary>
    public int Monthly { get; }

    /// <summary>Years kept.</summary>
    public int Yearly { get; }

    /// <summary>Newest snapshots always kept.</summary>
    public int Latest { get; }

    /// <summary>True for the policy <c>*</c>: nothing is ever pruned.</summary>
    public bool KeepAll { get; }

    /// <summary>Parses a policy.</summary>
    /// <exception cref="FormatException">The text is malformed; the message names the bad token.</exception>
    public static RetentionPolicy Parse(string text) =>
        TryParse(text, out var policy, out var error) ? policy! : throw new FormatException(error);

    /// <summary>Parses a policy; on failure <paramref name="error"/> says what is wrong.</summary>
    public static bool TryParse(string? text, out RetentionPolicy? policy, out string? error)
    {
        policy = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "A retention policy must not be empty (for example '24h 14d 4w 6m').";
            return false;
        }

        if (text.Length > 200)
        {
            error = $"A retention policy is at most 200 characters (got {text.Length}).";
            return false;
        }

        var tokens = text.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (tokens is ["*"])
        {
            policy = new RetentionPolicy(0, 0, 0, 0, 0, 0, keepAll: true);
            error = null;
            return true;
        }

        var counts = new int?[5];
        int? latest = null;
        foreach (var token in tokens)
        {
            if (token.StartsWith("latest:", StringComparison.Ordinal))
            {
                if (latest is not null)
                {
                    error = $"'latest:' appears twice in '{text}'.";
                    return false;
                }

                if (!TryCount(token["latest:".Length..], allowStar: false, out var n))
                {
                    error = $"'{token}' needs a count of 0 to {MaxCount}, as in 'latest:3'.";
                    return false;
                }

                latest = n;
                continue;
            }

            var unit = token.Length >= 2 ? "hdwmy".IndexOf(token[^1], StringComparison.Ordinal) : -1;
            if (unit < 0)
            {
                error = $"'{token}' is not a retention term: use <count><h|d|w|m|y> (count a number or *), 'latest:N', or '*' alone.";
                return false;
            }

            if (!TryCount(token[..^1], allowStar: true, out var count))
            {
                error = $"'{token}' needs a count of 0 to {MaxCount} or '*' before '{token[^1]}'.";
                return false;
            }

            if (counts[unit] is not null)
            {
                error = $"The unit '{token[^1]}' appears twice in '{text}'.";
                return false;
            }

            counts[unit] = count;
        }

        policy = new RetentionPolicy(counts[0] ?? 0, counts[1] ?? 0, counts[2] ?? 0, counts[3] ?? 0, counts[4] ?? 0, latest ?? 1, keepAll: false);
        error = null;
        return true;
    }

    private static bool TryCount(string text, bool allowStar, out int count)
    {
        if (allowStar && text == "*")
        {
            count = int.MaxValue;
            return true;
        }

        count = 0;
        return text.Length is > 0 and <= 6 && text.All(char.IsAsciiDigit) &&
               int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out count) && count <= MaxCount;
    }

    /// <summary>
    /// Returns, for each timestamp (in the given order), whether it is kept at <paramref name="now"/>.
    /// In each period that is still within its count the oldest snapshot is kept (as btrbk does);
    /// the newest <see cref="Latest"/> and any dated after <paramref name="now"/> are always kept.
    /// </summary>
    public bool[] Apply(IReadOnlyList<DateTimeOffset> timestamps, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(timestamps);
        var keep = new bool[timestamps.Count];
        if (KeepAll)
        {
            Array.Fill(keep, true);
            return keep;
        }

        var order = Enumerable.Range(0, timestamps.Count).OrderBy(i => timestamps[i]).ThenBy(i => i).ToArray();
        for (var k = 0; k < Math.Min(Latest, order.Length); k++)
        {
            keep[order[^(k + 1)]] = true;
        }

        Span<int> counts = [Hourly, Daily, Weekly, Monthly, Yearly];
        for (var unit = 0; unit < 5; unit++)
        {
            if (counts[unit] == 0)
            {
                continue;
            }

            var current = Period(now, unit);
            long? lastPeriod = null;
            foreach (var i in order)
            {
                if (timestamps[i] > now)
                {
                    keep[i] = true;
                    continue;
                }

                var p = Period(timestamps[i], unit);
                if (p != lastPeriod)
                {
                    lastPeriod = p;
                    if (current - p < counts[unit])
                    {
                        keep[i] = true;
                    }
                }
            }
        }

        return keep;
    }

    private static long Period(DateTimeOffset t, int unit)
    {
        var utc = t.UtcDateTime;
        var seconds = t.ToUnixTimeSeconds();
        return unit switch
        {
            0 => FloorDiv(seconds, 3600),
            1 => FloorDiv(seconds, 86400),
            2 => FloorDiv(FloorDiv(seconds, 86400) + 3, 7), // 1970-01-01 was a Thursday: weeks start on Monday.
            3 => (utc.Year * 12L) + utc.Month - 1,
            _ => utc.Year,
        };
    }

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : ((a + 1) / b) - 1;

    /// <summary>The canonical text of the policy (parses back to an equal policy).</summary>
    public override string ToString()
    {
        if (KeepAll)
        {
            return "*";
        }

        var sb = new StringBuilder();
        Span<int> counts = [Hourly, Daily, Weekly, Monthly, Yearly];
        for (var unit = 0; unit < 5; unit++)
        {
            if (counts[unit] != 0)
            {
                sb.Append(counts[unit] == int.MaxValue ? "*" : counts[unit].ToString(CultureInfo.InvariantCulture)).Append("hdwmy"[unit]).Append(' ');
            }
        }

        return sb.Append("latest:").Append(Latest.ToString(CultureInfo.InvariantCulture)).ToString();
    }
}
