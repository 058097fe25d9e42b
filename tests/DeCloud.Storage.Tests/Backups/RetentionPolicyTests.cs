using CsCheck;
using DeCloud.Storage.Backups;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Storage.Tests.Backups;

public sealed class RetentionPolicyTests
{
    [Theory]
    [InlineData("24h 14d 4w 6m", 24, 14, 4, 6, 0, 1)]
    [InlineData("  6m   24h ", 24, 0, 0, 6, 0, 1)]
    [InlineData("2y latest:5", 0, 0, 0, 0, 2, 5)]
    [InlineData("*m 7d", 0, 7, 0, int.MaxValue, 0, 1)]
    [InlineData("0h latest:0", 0, 0, 0, 0, 0, 0)]
    public void Parse_ValidText_ReadsEveryUnit(string text, int h, int d, int w, int m, int y, int latest)
    {
        var p = RetentionPolicy.Parse(text);

        Assert.Equal((h, d, w, m, y, latest), (p.Hourly, p.Daily, p.Weekly, p.Monthly, p.Yearly, p.Latest));
        Assert.False(p.KeepAll);
    }

    [Fact]
    public void Parse_Star_KeepsAll()
    {
        var p = RetentionPolicy.Parse("*");

        Assert.True(p.KeepAll);
        Assert.All(p.Apply([DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddYears(5)], DateTimeOffset.UnixEpoch.AddYears(10)), Assert.True);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("24x", "not a retention term")]
    [InlineData("h", "not a retention term")]
    [InlineData("-1d", "count")]
    [InlineData("1.5d", "count")]
    [InlineData("24h 12h", "twice")]
    [InlineData("latest:", "latest")]
    [InlineData("latest:*", "latest")]
    [InlineData("latest:1 latest:2", "twice")]
    [InlineData("100001d", "count")]
    [InlineData("* 24h", "not a retention term")]
    [InlineData("24h,14d", "count")]
    [InlineData("２４h", "count")]
    public void Parse_Malformed_ThrowsFormatNamingTheProblem(string text, string expected)
    {
        var ex = Assert.Throws<FormatException>(() => RetentionPolicy.Parse(text));

        Assert.Contains(expected, ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Parse_RandomText_EitherParsesAndRoundTripsOrFailsCleanly()
    {
        Gen.String[Gen.Char["0123456789hdwmy*: latesx"], 0, 30].Sample(text =>
        {
            if (RetentionPolicy.TryParse(text, out var p, out var error))
            {
                var again = RetentionPolicy.Parse(p!.ToString());
                Assert.Equal(p.ToString(), again.ToString());
            }
            else
            {
                Assert.False(string.IsNullOrEmpty(error));
            }
        }, iter: 5000);
    }

    [Fact]
    public void Apply_HourlySnapshotsOverEightMonths_KeepsBtrbkSchedule()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 30, 0, TimeSpan.Zero));
        var policy = RetentionPolicy.Parse("24h 14d 4w 6m");
        var kept = new List<DateTimeOffset>();
        var maxKept = 0;
        for (var hour = 0; hour < 24 * 240; hour++)
        {
            kept.Add(time.GetUtcNow());
            var keep = policy.Apply(kept, time.GetUtcNow());
            kept = kept.Where((_, i) => keep[i]).ToList();
            maxKept = Math.Max(maxKept, kept.Count);
            time.Advance(TimeSpan.FromHours(1));
        }

        var now = time.GetUtcNow() - TimeSpan.FromHours(1);
        // The last 24 hours, one per hour.
        Assert.Equal(24, kept.Count(t => now - t < TimeSpan.FromHours(24)));
        // One per day for the last 14 days, one per month for the last 6 months, nothing older.
        for (var d = 0; d < 14; d++)
        {
            var day = now.UtcDateTime.Date.AddDays(-d);
            Assert.Contains(kept, t => t.UtcDateTime.Date == day);
        }

        for (var m = 0; m < 6; m++)
        {
            var month = new DateTime(now.Year, now.Month, 1, 0, 0, 0, DateTimeKind.Utc).AddMonths(-m);
            Assert.Single(kept, t => t.UtcDateTime == month.AddMinutes(30));
        }

        Assert.DoesNotContain(kept, t => t < new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(-5));
        Assert.InRange(kept.Count, 24 + 13, 24 + 14 + 4 + 6);
        Assert.True(maxKept <= 24 + 14 + 4 + 6 + 1, $"at most {maxKept} were kept at once");
    }

    [Fact]
    public void Apply_AnyInput_KeepsNewestAndIsIdempotent()
    {
        var gen = Gen.Select(Gen.Long[0, 400L * 24 * 3600].Array[1, 60], Gen.Int[0, 30], Gen.Int[0, 20], Gen.Int[0, 8], Gen.Int[0, 12]);
        gen.Sample((offsets, h, d, w, m) =>
        {
            var start = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
            var stamps = offsets.Select(o => start.AddSeconds(o)).ToList();
            var now = stamps.Max();
            var policy = RetentionPolicy.Parse($"{h}h {d}d {w}w {m}m");

            var keep = policy.Apply(stamps, now);
            var kept = stamps.Where((_, i) => keep[i]).ToList();

            Assert.Contains(now, kept);
            Assert.All(policy.Apply(kept, now), Assert.True);
        }, iter: 500);
    }

    [Fact]
    public void BackupSnapshot_FormatThenParse_RoundTripsTags()
    {
        var t = new DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.Zero);
        var name = BackupSnapshot.FormatName("vm.disk@x", "proj-1", "host_a", t);

        var parsed = BackupSnapshot.TryParse(name);

        Assert.Equal(new BackupSnapshot(name, "vm.disk@x", "proj-1", "host_a", t), parsed);
        Assert.True(VolumeName.IsValid(name));
        Assert.Null(BackupSnapshot.TryParse("vm@backup.p.h.notatime"));
        Assert.Null(BackupSnapshot.TryParse("vm@backup.p.h"));
        Assert.Null(BackupSnapshot.TryParse("plain"));
    }
}
