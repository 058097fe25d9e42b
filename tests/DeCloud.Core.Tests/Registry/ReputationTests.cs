using DeCloud.Core.Registry;

namespace DeCloud.Core.Tests.Registry;

public sealed class ReputationTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);
    private static readonly DateTimeOffset Noon = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(0, 0)]
    [InlineData(15, 0)]
    [InlineData(29.9, 0)]
    [InlineData(30, 1)]
    [InlineData(44.9, 1)]
    [InlineData(45, 2)]
    [InlineData(3600, 239)]
    public void MissedBy_Gap_CountsWholeIntervalsPastTheDueTime(double seconds, long missed) =>
        Assert.Equal(missed, Reputation.MissedBy(Noon, Noon.AddSeconds(seconds), Interval));

    [Fact]
    public void Attribute_SilenceAcrossMidnight_SplitsByTheDayEachHeartbeatWasDue()
    {
        var last = new DateTimeOffset(2026, 3, 10, 23, 59, 0, TimeSpan.Zero);
        var into = new List<FailedHeartbeats>();

        // Due at 23:59:15, :30, :45 (day 1) and 00:00:00 ... 00:01:00 (day 2).
        Reputation.Attribute(last, Interval, 1, 8, DateTimeOffset.MinValue, into);

        var day = Reputation.Day(last);
        Assert.Equal([new FailedHeartbeats(day, 3), new FailedHeartbeats(day + 1, 5)], into);
    }

    [Fact]
    public void Attribute_LongOutage_OneEntryPerDayAndTotalMatches()
    {
        var into = new List<FailedHeartbeats>();
        Reputation.Attribute(Noon, Interval, 1, 3 * 5760, DateTimeOffset.MinValue, into);

        Assert.Equal(4, into.Count);
        Assert.Equal(3 * 5760, into.Sum(f => (long)f.Count));
        Assert.Equal(2880 - 1, into[0].Count); // noon to midnight, the heartbeat due at noon itself was not missed
    }

    [Fact]
    public void Attribute_CountFrom_SkipsHeartbeatsDueBeforeIt()
    {
        var into = new List<FailedHeartbeats>();
        Reputation.Attribute(Noon, Interval, 1, 10, Noon.AddSeconds(100), into);

        // Due at 15, 30, ..., 150 s; only 105..150 (4 of them) are at or after 100 s.
        Assert.Equal(4, Assert.Single(into).Count);
    }

    [Fact]
    public void Uptime_FormulaOverTheWindow_ExpectedMinusFailedOverExpected()
    {
        var now = Noon.AddDays(40);
        var windowStart = Reputation.StartOfDay(Reputation.Day(now) - 29);
        var expected = (now - windowStart).TotalSeconds / 15;

        Assert.Equal(1, Reputation.Uptime(0, Noon, now, Interval, 30));
        Assert.Equal((expected - 1000) / expected, Reputation.Uptime(1000, Noon, now, Interval, 30), 12);
        Assert.Equal(0, Reputation.Uptime(long.MaxValue / 2, Noon, now, Interval, 30));
    }

    [Fact]
    public void Uptime_YoungNode_WindowStartsAtRegistration()
    {
        var now = Noon.AddHours(1);

        Assert.Equal((240 - 24) / 240.0, Reputation.Uptime(24, Noon, now, Interval, 30), 12);
        Assert.Equal(1, Reputation.Uptime(0, Noon, Noon.AddSeconds(5), Interval, 30));
    }
}
