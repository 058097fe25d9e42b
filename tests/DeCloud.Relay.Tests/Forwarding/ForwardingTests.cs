using System.Net;
using CsCheck;
using DeCloud.Relay.Forwarding;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Relay.Tests.Forwarding;

public sealed class ProxyProtocolV2Tests
{
    [Fact]
    public void Build_Ipv4_ParsesBackToTheSameEndPoints()
    {
        var client = new IPEndPoint(IPAddress.Parse("198.51.100.9"), 51234);
        var destination = new IPEndPoint(IPAddress.Parse("203.0.113.1"), 40001);
        var header = ProxyProtocolV2.Build(client, destination);
        Assert.Equal(28, header.Length);
        var parsed = ProxyProtocolV2.TryParse(header);
        Assert.NotNull(parsed);
        Assert.Equal(client, parsed.Value.Source);
        Assert.Equal(destination, parsed.Value.Destination);
    }

    [Fact]
    public void Build_Ipv4MappedIpv6_EncodesAsIpv4()
    {
        var client = new IPEndPoint(IPAddress.Parse("::ffff:10.1.2.3"), 1);
        var header = ProxyProtocolV2.Build(client, new IPEndPoint(IPAddress.Parse("::ffff:10.0.0.1"), 2));
        Assert.Equal(0x11, header[13]);
        Assert.Equal(IPAddress.Parse("10.1.2.3"), ProxyProtocolV2.TryParse(header)!.Value.Source.Address);
    }

    [Fact]
    public void Build_Ipv6_ParsesBack()
    {
        var client = new IPEndPoint(IPAddress.Parse("2001:db8::5"), 443);
        var parsed = ProxyProtocolV2.TryParse(ProxyProtocolV2.Build(client, new IPEndPoint(IPAddress.IPv6Loopback, 40000)));
        Assert.Equal(client, parsed!.Value.Source);
    }

    [Fact]
    public void TryParse_TruncatedOrRandom_ReturnsNullWithoutThrowing()
    {
        var header = ProxyProtocolV2.Build(new IPEndPoint(IPAddress.Loopback, 1), new IPEndPoint(IPAddress.Loopback, 2));
        for (var cut = 0; cut < header.Length; cut++)
        {
            Assert.Null(ProxyProtocolV2.TryParse(header.AsSpan(0, cut)));
        }

        Gen.Byte.Array[0, 64].Sample(bytes => Assert.Null(ProxyProtocolV2.TryParse(bytes)), iter: 5_000);
    }
}

public sealed class TokenBucketTests
{
    [Fact]
    public void Take_WithinBurst_NoWait()
    {
        var time = new FakeTimeProvider();
        var sut = new TokenBucket(1000, 500, time);
        Assert.Equal(TimeSpan.Zero, sut.Take(500));
    }

    [Fact]
    public void Take_OverBurst_WaitsForTheDebtAtTheRate()
    {
        var time = new FakeTimeProvider();
        var sut = new TokenBucket(1000, 500, time);
        Assert.Equal(TimeSpan.FromSeconds(1), sut.Take(1500));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TimeSpan.Zero, sut.Take(0));
        Assert.Equal(TimeSpan.FromMilliseconds(100), sut.Take(100));
    }

    [Fact]
    public void Take_LongIdle_RefillsOnlyUpToBurst()
    {
        var time = new FakeTimeProvider();
        var sut = new TokenBucket(1000, 500, time);
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(TimeSpan.FromMilliseconds(500), sut.Take(1000));
    }

    [Fact]
    public async Task WaitAsync_Debt_CompletesOnlyAfterTimeAdvances()
    {
        var time = new FakeTimeProvider();
        var sut = new TokenBucket(1000, 100, time);
        var wait = sut.WaitAsync(1100, CancellationToken.None).AsTask();
        Assert.False(wait.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));
        await wait.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
