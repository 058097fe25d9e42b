using DeCloud.Billing.Pricing;
using DeCloud.Core.Model;

namespace DeCloud.Billing.Tests.Pricing;

public sealed class PricingTests : IDisposable
{
    private readonly TestDb _db = new();

    public void Dispose() => _db.Dispose();

    [Fact]
    public void Estimate_DefaultRates_IsResourceCostTimesMultiplierPlusBandwidthRate()
    {
        // 4 points Dedicated, 8 GiB, 100 GiB, no GPU at defaults: 0.04 + 0.04 + 0.01 = 0.09; Performance x1.2 + 0.010.
        var e = _db.Prices.EstimateWithDefaults(new Resources(4, 8192, 100), QualityTier.Dedicated, BandwidthTier.Performance);

        Assert.Equal(0.09m, e.ResourceHourlyUsdc);
        Assert.Equal(0.09m * 1.2m + 0.010m, e.HourlyUsdc);
        Assert.Equal(["cpu", "memory", "storage", "gpu", "bandwidth-multiplier", "bandwidth"], e.Lines.Select(l => l.Item));
        Assert.Equal(e.HourlyUsdc, e.Lines.Sum(l => l.HourlyUsdc));
        Assert.Equal(MicroUsdc.FloorFromUsdc(e.HourlyUsdc * 720), e.MicroUsdcFor(720));
    }

    [Theory]
    [InlineData(QualityTier.Dedicated, 12)]
    [InlineData(QualityTier.Standard, 8)]
    [InlineData(QualityTier.Balanced, 6)]
    [InlineData(QualityTier.Burstable, 3)]
    public void Estimate_QualityTier_PricesCpuShareActuallyGiven(QualityTier tier, int twelfths)
    {
        var e = _db.Prices.EstimateWithDefaults(new Resources(12, 1024, 1), tier, BandwidthTier.Standard);

        var cpu = e.Lines.Single(l => l.Item == "cpu");
        Assert.Equal(12 * twelfths / 12m, cpu.Quantity);
        Assert.Equal(cpu.Quantity * 0.01m, cpu.HourlyUsdc);
    }

    [Fact]
    public void SetOperatorPrices_BelowFloor_StoresFloor()
    {
        var node = TestDb.Node(1);

        var stored = _db.PriceBook.SetOperatorPrices(node, new ResourceRates(0.001m, 0.01m, 0m, 0.2m));

        Assert.Equal(new ResourceRates(0.005m, 0.01m, 0.00005m, 0.2m), stored);
        Assert.Equal(stored, _db.PriceBook.GetPrices(node));
        Assert.Equal(ResourceRates.DefaultRates, _db.PriceBook.GetPrices(TestDb.Node(2)));
    }

    [Theory]
    [InlineData(-0.01, 0, 0, 0, "operatorPrices.cpuPerPointHour")]
    [InlineData(0, -1, 0, 0, "operatorPrices.memoryPerGiBHour")]
    [InlineData(0, 0, 1000.01, 0, "operatorPrices.storagePerGiBHour")]
    [InlineData(0, 0, 0, 99999, "operatorPrices.gpuPerHour")]
    public void SetOperatorPrices_NegativeOrAbsurd_ThrowsAndStoresNothing(double cpu, double mem, double st, double gpu, string field)
    {
        var node = TestDb.Node(3);
        _db.PriceBook.SetOperatorPrices(node, new ResourceRates(0.02m, 0.02m, 0.02m, 0.2m));

        var ex = Assert.Throws<BillingValidationException>(() =>
            _db.PriceBook.SetOperatorPrices(node, new ResourceRates((decimal)cpu, (decimal)mem, (decimal)st, (decimal)gpu)));

        Assert.Equal(field, ex.Field);
        Assert.Equal(new ResourceRates(0.02m, 0.02m, 0.02m, 0.2m), _db.PriceBook.GetPrices(node));
    }

    [Fact]
    public void PricingOptions_DefaultBelowFloor_NamesProperty()
    {
        var options = new PricingOptions { Defaults = ResourceRates.DefaultRates with { CpuPerPointHour = 0.001m } };

        Assert.Equal("Pricing.Defaults", Assert.Throws<BillingValidationException>(() => new PriceCalculator(options)).Field);
    }

    [Fact]
    public void Estimate_BadResourcesOrTier_Throws()
    {
        Assert.Throws<DeCloudValidationException>(() => _db.Prices.EstimateWithDefaults(new Resources(0, 1024, 1), QualityTier.Dedicated, BandwidthTier.Basic));
        Assert.Throws<DeCloudValidationException>(() => _db.Prices.EstimateWithDefaults(new Resources(1, 1024, 1), (QualityTier)9, BandwidthTier.Basic));
        Assert.Throws<DeCloudValidationException>(() => _db.Prices.EstimateWithDefaults(new Resources(1, 1024, 1), QualityTier.Dedicated, (BandwidthTier)9));
    }

    [Fact]
    public void Place_PriceChangesAfterPlacement_DoNotTouchRunningVm()
    {
        var node = TestDb.Node(4);
        _db.PriceBook.SetOperatorPrices(node, new ResourceRates(0.02m, 0.005m, 0.0001m, 0.1m));
        var vm = VmId.New();
        var resources = new Resources(2, 2048, 10);

        var created = _db.Meter.RegisterVm(vm, TestDb.Wallet(1), resources, QualityTier.Dedicated, BandwidthTier.Standard);
        var placed = _db.Meter.Place(vm, node, TestDb.Wallet(2));
        _db.PriceBook.SetOperatorPrices(node, new ResourceRates(0.5m, 0.5m, 0.5m, 0.5m));

        Assert.Equal(_db.Prices.EstimateWithDefaults(resources, QualityTier.Dedicated, BandwidthTier.Standard).HourlyUsdc, created.HourlyRateUsdc);
        Assert.Equal(2 * 0.02m + 2 * 0.005m + 10 * 0.0001m + 0.005m, placed.HourlyRateUsdc);
        Assert.Equal(placed.HourlyRateUsdc, _db.Meter.GetLease(vm)!.HourlyRateUsdc);
        Assert.Throws<BillingStateException>(() => _db.Meter.Place(vm, TestDb.Node(5), TestDb.Wallet(2)));
        Assert.Equal(placed, _db.Meter.Place(vm, node, TestDb.Wallet(2)));
    }
}
