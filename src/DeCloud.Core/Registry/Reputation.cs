namespace DeCloud.Core.Registry;

/// <summary>
/// The arithmetic of heartbeat reputation. A heartbeat is failed when a whole interval passes after
/// it was due: after the last heartbeat at <c>L</c>, the <c>j</c>-th expected one is due at
/// <c>L + j * interval</c> and counts as failed once <c>L + (j + 1) * interval</c> has passed without
/// a heartbeat. Failures are attributed to the UTC day they were due on.
/// </summary>
internal static class Reputation
{
    private const long MsPerDay = 86_400_000;

    /// <summary>Days since 1970-01-01 UTC.</summary>
    public static long Day(DateTimeOffset at) => Math.DivRem(at.ToUnixTimeMilliseconds(), MsPerDay, out var rem) - (rem < 0 ? 1 : 0);

    /// <summary>The start of <paramref name="day"/>.</summary>
    public static DateTimeOffset StartOfDay(long day) => DateTimeOffset.FromUnixTimeMilliseconds(day * MsPerDay);

    /// <summary>How many heartbeats after <paramref name="lastSeen"/> have failed by <paramref name="now"/>.</summary>
    public static long MissedBy(DateTimeOffset lastSeen, DateTimeOffset now, TimeSpan interval)
    {
        if (now <= lastSeen)
        {
            return 0;
        }

        return Math.Max(0, ((now - lastSeen).Ticks / interval.Ticks) - 1);
    }

    /// <summary>
    /// Adds the failed heartbeats number <paramref name="first"/>..<paramref name="last"/> (1-based, after
    /// <paramref name="lastSeen"/>) to <paramref name="into"/> per day, skipping those due before <paramref name="countFrom"/>.
    /// </summary>
    public static void Attribute(DateTimeOffset lastSeen, TimeSpan interval, long first, long last, DateTimeOffset countFrom, List<FailedHeartbeats> into)
    {
        if (first > last)
        {
            return;
        }

        if (countFrom > lastSeen)
        {
            // Slots due before countFrom are skipped: j >= ceil((countFrom - lastSeen) / interval).
            var minSlot = CeilDiv((countFrom - lastSeen).Ticks, interval.Ticks);
            first = Math.Max(first, minSlot);
        }

        while (first <= last)
        {
            var due = lastSeen + (interval * first);
            var day = Day(due);
            var dayEnd = StartOfDay(day + 1);
            var lastInDay = CeilDiv((dayEnd - lastSeen).Ticks, interval.Ticks) - 1;
            var upTo = Math.Min(last, lastInDay);
            var count = upTo - first + 1;
            if (into.Count > 0 && into[^1].Day == day)
            {
                into[^1] = new FailedHeartbeats(day, (int)Math.Min(int.MaxValue, into[^1].Count + count));
            }
            else
            {
                into.Add(new FailedHeartbeats(day, (int)Math.Min(int.MaxValue, count)));
            }

            first = upTo + 1;
        }
    }

    /// <summary>
    /// Uptime = (expected - failed) / expected over the window: the last <paramref name="windowDays"/> UTC
    /// days including today, starting no earlier than <paramref name="registeredAt"/>; expected = seconds in
    /// the window / interval. 1 when less than one heartbeat was expected yet.
    /// </summary>
    public static double Uptime(long failed, DateTimeOffset registeredAt, DateTimeOffset now, TimeSpan interval, int windowDays)
    {
        var windowStart = StartOfDay(Day(now) - windowDays + 1);
        if (registeredAt > windowStart)
        {
            windowStart = registeredAt;
        }

        var expected = (now - windowStart).TotalSeconds / interval.TotalSeconds;
        if (expected < 1)
        {
            return 1;
        }

        return Math.Clamp((expected - failed) / expected, 0, 1);
    }

    /// <summary>The first day kept in a window of <paramref name="windowDays"/> ending today.</summary>
    public static long FirstDayOfWindow(DateTimeOffset now, int windowDays) => Day(now) - windowDays + 1;

    private static long CeilDiv(long a, long b) => a <= 0 ? 0 : ((a - 1) / b) + 1;
}
