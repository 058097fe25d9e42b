using CsCheck;
using DeCloud.Agent.Hypervisors;
using DeCloud.Agent.Storage;
using DeCloud.Cli.Relay;
using DeCloud.Virtualization.Qos;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>What the agent and the relay role parse from commands and configuration: good input maps exactly, anything else is refused with a reason.</summary>
public sealed class AgentInputTests
{
    [Theory]
    [InlineData("Dedicated", 12)]
    [InlineData("standard", 8)]
    [InlineData("Balanced", 6)]
    [InlineData("BURSTABLE", 3)]
    [InlineData("", 12)]
    public void CpuShareOf_KnownTier_CoreTwelfths(string tier, int twelfths) =>
        Assert.Equal(new CpuShare(twelfths), VmTiers.CpuShareOf(tier));

    [Theory]
    [InlineData("Basic", 0)]
    [InlineData("Basic", 1_250_000)]
    [InlineData("Standard", 6_250_000)]
    [InlineData("Performance", 25_000_000)]
    public void BandwidthOf_DefaultRate_VirtualizationPreset(string tier, long bytesPerSecond)
    {
        var expected = tier switch { "Basic" => BandwidthTiers.Basic, "Standard" => BandwidthTiers.Standard, _ => BandwidthTiers.Performance };
        Assert.Equal(expected, VmTiers.BandwidthOf(tier, bytesPerSecond));
    }

    [Fact]
    public void BandwidthOf_UnmeteredOrNoTier_NoCap()
    {
        Assert.True(VmTiers.BandwidthOf("Unmetered", 0).IsUnlimited);
        Assert.True(VmTiers.BandwidthOf(string.Empty, 0).IsUnlimited);
    }

    [Fact]
    public void BandwidthOf_OperatorRate_KeepsShapeAndValidates() =>
        Gen.Long[BandwidthLimit.MinBytesPerSecond, 1_000_000_000].Sample(bps =>
        {
            var limit = VmTiers.BandwidthOf("Standard", bps);
            Assert.Equal(bps, limit.AverageBytesPerSecond);
            Assert.Equal(2 * bps, limit.PeakBytesPerSecond);
            Assert.True(limit.BurstBytes >= 1024 && (limit.BurstBytes & (limit.BurstBytes - 1)) == 0, "burst is a power of two in KiB");
            Assert.True(limit.BurstBytes <= Math.Max(1024, bps / 5));
            limit.Validate();
        });

    [Fact]
    public void TierNames_RandomText_RejectedOrKnown() =>
        Gen.String.Sample(text =>
        {
            var known = new[] { "dedicated", "standard", "balanced", "burstable", "basic", "performance", "unmetered" };
            if (string.IsNullOrEmpty(text) || known.Contains(text.ToLowerInvariant()))
            {
                return;
            }

            Assert.Throws<ArgumentException>(() => VmTiers.CpuShareOf(text));
            Assert.Throws<ArgumentException>(() => VmTiers.BandwidthOf(text, 0));
        });

    [Theory]
    [InlineData("1")]
    [InlineData("-3")]
    [InlineData("Gold")]
    public void TierNames_NumbersOrUnknown_Rejected(string tier)
    {
        Assert.Throws<ArgumentException>(() => VmTiers.CpuShareOf(tier));
        Assert.Throws<ArgumentException>(() => VmTiers.BandwidthOf(tier, 0));
        Assert.Throws<ArgumentException>(() => VmTiers.BandwidthOf("Basic", -1));
        Assert.Throws<ArgumentException>(() => VmTiers.BandwidthOf("Basic", 7_999));
    }

    [Theory]
    [InlineData("10.0.0.2:9000", "10.0.0.2", 9000)]
    [InlineData("[::1]:7000", "::1", 7000)]
    [InlineData("node-b.example:65535", "node-b.example", 65535)]
    public void TryParseEndpoint_HostPort_Parsed(string text, string host, int port)
    {
        Assert.True(AgentStorage.TryParseEndpoint(text, out var h, out var p));
        Assert.Equal((host, port), (h, p));
    }

    [Fact]
    public void TryParseEndpoint_RandomText_NeverThrowsAndPortInRange() =>
        Gen.String.Sample(text =>
        {
            if (AgentStorage.TryParseEndpoint(text, out var host, out var port))
            {
                Assert.InRange(port, 1, 65535);
                Assert.NotEmpty(host);
            }
        });

    [Theory]
    [InlineData("nowhere")]
    [InlineData(":80")]
    [InlineData("host:0")]
    [InlineData("host:65536")]
    [InlineData("host:-1")]
    [InlineData("host:")]
    public void TryParseEndpoint_Bad_False(string text) => Assert.False(AgentStorage.TryParseEndpoint(text, out _, out _));

    [Theory]
    [InlineData("PortRange", "9-1")]
    [InlineData("PortRange", "1-70000")]
    [InlineData("PortRange", "40000")]
    [InlineData("ControlEndpoint", "7835")]
    [InlineData("ControlEndpoint", "example.com:7835")]
    [InlineData("PublicAddress", "not-an-ip")]
    [InlineData("Secret", "short")]
    public void RelayRoleOptions_Bad_ArgumentNamesTheSetting(string setting, string value)
    {
        var o = new RelayRoleOptions { Secret = "a long enough shared relay secret" };
        typeof(RelayRoleOptions).GetProperty(setting)!.SetValue(o, value);
        var ex = Assert.Throws<ArgumentException>(() => o.Build());
        Assert.Contains(setting, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RelayRoleOptions_TwoSecretSources_Refused()
    {
        var o = new RelayRoleOptions { Secret = "a long enough shared relay secret", SecretFile = "/dev/null" };
        Assert.Contains("exactly one", Assert.Throws<ArgumentException>(() => o.Build()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RelayRoleOptions_Good_ServerOptions()
    {
        var (server, _) = new RelayRoleOptions { ControlEndpoint = "127.0.0.1:0", PortRange = "41000-41010", Secret = "00112233445566778899aabbccddeeff" }.Build();
        Assert.Equal((41000, 41010, 0), (server.PortRangeStart, server.PortRangeEnd, server.ControlEndPoint.Port));
        Assert.Equal(16, RelayRoleOptions.SecretBytes("00112233445566778899aabbccddeeff", "Secret").Length);
    }
}
