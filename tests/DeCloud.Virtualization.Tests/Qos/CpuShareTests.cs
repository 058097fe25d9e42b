using DeCloud.Virtualization.Qos;

namespace DeCloud.Virtualization.Tests.Qos;

public sealed class CpuShareTests
{
    [Theory]
    [InlineData(12, 1, -1, 1024)]
    [InlineData(8, 1, 66666, 682)]
    [InlineData(6, 4, 50000, 2048)]
    [InlineData(3, 1, 25000, 256)]
    [InlineData(3, 8, 25000, 2048)]
    public void ToSchedule_Tier_MatchesDocumentedFormula(int twelfths, int vcpus, long quota, ulong shares)
    {
        var schedule = new CpuShare(twelfths).ToSchedule(vcpus);
        Assert.Equal(100_000UL, schedule.PeriodMicroseconds);
        Assert.Equal(quota, schedule.QuotaMicroseconds);
        Assert.Equal(shares, schedule.Shares);
    }

    [Fact]
    public void Burstable_QuarterCore_IsTwentyFiveMillisecondsPerHundred()
    {
        var s = QualityTiers.Burstable.ToSchedule(1);
        Assert.Equal(0.25, (double)s.QuotaMicroseconds / s.PeriodMicroseconds);
    }

    [Fact]
    public void ToSchedule_Invalid_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CpuShare(0).ToSchedule(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => QualityTiers.Standard.ToSchedule(0));
    }

    [Fact]
    public void BandwidthTiers_Rates_AreTheTierMegabits()
    {
        Assert.Equal(BandwidthLimit.FromMegabitsPerSecond(10).AverageBytesPerSecond, BandwidthTiers.Basic.AverageBytesPerSecond);
        Assert.Equal(1250u, BandwidthTiers.Basic.ToInterfaceRate().AverageKBps);
        Assert.Equal(6250u, BandwidthTiers.Standard.ToInterfaceRate().AverageKBps);
        Assert.Equal(25000u, BandwidthTiers.Performance.ToInterfaceRate().AverageKBps);
        Assert.True(BandwidthTiers.Unmetered.IsUnlimited);
    }
}
