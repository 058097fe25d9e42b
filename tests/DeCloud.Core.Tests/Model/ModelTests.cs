using DeCloud.Core.Model;

namespace DeCloud.Core.Tests.Model;

public sealed class WalletAddressTests
{
    [Theory]
    [InlineData("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")]
    [InlineData("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359")]
    [InlineData("0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB")]
    [InlineData("0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb")]
    public void Parse_Eip55Vectors_RoundTripsChecksum(string address)
    {
        var parsed = WalletAddress.Parse(address);
        Assert.Equal(address, parsed.ToChecksumHex());
        Assert.Equal(address.ToLowerInvariant(), parsed.ToLowerHex());
        Assert.Equal(parsed, WalletAddress.Parse(address.ToLowerInvariant()));
    }

    [Theory]
    [InlineData("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD")] // last letter's case flipped
    [InlineData("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")]
    [InlineData("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe")]
    [InlineData("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd")]
    [InlineData("0xZaAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")]
    [InlineData("")]
    [InlineData(null)]
    public void Parse_Malformed_ThrowsNamingField(string? address)
    {
        var ex = Assert.Throws<DeCloudValidationException>(() => WalletAddress.Parse(address, "operatorWallet"));
        Assert.Equal("operatorWallet", ex.Field);
    }
}

public sealed class NodeIdTests
{
    private static readonly WalletAddress Wallet = WalletAddress.Parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");

    [Fact]
    public void FromMachine_SameInputs_SameId()
    {
        var a = NodeId.FromMachine("b0e2c1d4f5a64c3b9a1e2d3c4b5a6978", Wallet);
        var b = NodeId.FromMachine("b0e2c1d4f5a64c3b9a1e2d3c4b5a6978\n", WalletAddress.Parse(Wallet.ToLowerHex()));
        Assert.Equal(a, b);
        Assert.Equal(64, a.Value.Length);
        Assert.Equal(a, NodeId.Parse(a.Value.ToUpperInvariant()));
    }

    [Fact]
    public void FromMachine_DifferentWallet_DifferentId()
    {
        var other = WalletAddress.Parse("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359");
        Assert.NotEqual(NodeId.FromMachine("m1", Wallet), NodeId.FromMachine("m1", other));
    }

    [Fact]
    public void FromMachine_KnownValue_IsSha256OfMachineIdAndLowerAddress()
    {
        var expected = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes("m1" + "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")));
        Assert.Equal(expected, NodeId.FromMachine("m1", Wallet).Value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("zz00000000000000000000000000000000000000000000000000000000000000")]
    public void Parse_Malformed_Throws(string s) =>
        Assert.Equal("nodeId", Assert.Throws<DeCloudValidationException>(() => NodeId.Parse(s)).Field);
}

public sealed class TierTests
{
    [Theory]
    [InlineData(QualityTier.Dedicated, 12, 1.0)]
    [InlineData(QualityTier.Standard, 8, 1.5)]
    [InlineData(QualityTier.Balanced, 6, 2.0)]
    [InlineData(QualityTier.Burstable, 3, 4.0)]
    public void TwelfthsPerPoint_EachTier_MatchesOvercommitRatio(QualityTier tier, int twelfths, double ratio)
    {
        Assert.Equal(twelfths, QualityTiers.TwelfthsPerPoint(tier));
        Assert.Equal((decimal)ratio, QualityTiers.OvercommitRatio(tier));
    }

    [Fact]
    public void BandwidthDefaults_MatchDesign()
    {
        var c = BandwidthTierCatalog.Default;
        Assert.Equal(10, c[BandwidthTier.Basic].MegabitsPerSecond);
        Assert.Equal(1_250_000, c[BandwidthTier.Basic].BytesPerSecond);
        Assert.Equal(50, c[BandwidthTier.Standard].MegabitsPerSecond);
        Assert.Equal(200, c[BandwidthTier.Performance].MegabitsPerSecond);
        Assert.Null(c[BandwidthTier.Unmetered].MegabitsPerSecond);
        Assert.Equal([0.8m, 1.0m, 1.2m, 1.5m], c.All.Select(s => s.PriceMultiplier));
    }

    [Theory]
    [InlineData("gold")]
    [InlineData("7")]
    [InlineData(null)]
    public void Parse_UnknownTier_Throws(string? s)
    {
        Assert.Equal("qualityTier", Assert.Throws<DeCloudValidationException>(() => QualityTiers.Parse(s)).Field);
        Assert.Equal("bandwidthTier", Assert.Throws<DeCloudValidationException>(() => BandwidthTierCatalog.Parse(s)).Field);
    }

    [Theory]
    [InlineData(0, 1024, 10, "resources.computePoints")]
    [InlineData(2, -1, 10, "resources.memoryMiB")]
    [InlineData(2, 1024, long.MaxValue, "resources.storageGiB")]
    public void ValidateRequest_BadResources_NamesField(int points, long mem, long disk, string field) =>
        Assert.Equal(field, Assert.Throws<DeCloudValidationException>(() => new Resources(points, mem, disk).ValidateRequest()).Field);

    [Fact]
    public void Normalize_Score_FloorsToPoints()
    {
        Assert.Equal(3, new ComputePointNormalizer(1000).Normalize(3999.9));
        Assert.Throws<DeCloudValidationException>(() => new ComputePointNormalizer(1000).Normalize(double.NaN));
    }
}
