using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using DeCloud.Testing;
using DeCloud.Virtualization.Qos;
using DeCloud.Virtualization.Tests.Fixtures;

namespace DeCloud.Virtualization.Tests.Qos;

/// <summary>
/// The shaper on a veth pair between two namespaces: dcv-sha holds the "tap" (dcv-sa), dcv-shb plays the guest.
/// Towards-guest traffic leaves dcv-sa (HTB on the tap); from-guest traffic enters dcv-sa (IFB + HTB).
/// </summary>
[Collection(ShaperCollection.Name)]
public sealed class TcShaperTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Host = "dcv-sha";
    private const string Guest = "dcv-shb";
    private const string Tap = "dcv-sa";
    private static readonly IPAddress HostIp = IPAddress.Parse("10.254.213.1");
    private static readonly IPAddress GuestIp = IPAddress.Parse("10.254.213.2");
    private bool ready;

    public async ValueTask InitializeAsync()
    {
        if (!RealDependency.IsRoot && !RealDependency.IsCi)
        {
            return;
        }

        NetworkNamespace.Require();
        await NetworkNamespace.CreateAsync(Host);
        await NetworkNamespace.CreateAsync(Guest);
        await NetworkNamespace.ExecAsync(Host, "ip", "link", "add", Tap, "type", "veth", "peer", "name", "dcv-sb", "netns", Guest);
        await NetworkNamespace.ExecAsync(Host, "ip", "addr", "add", "10.254.213.1/30", "dev", Tap);
        await NetworkNamespace.ExecAsync(Host, "ip", "link", "set", Tap, "up");
        await NetworkNamespace.ExecAsync(Guest, "ip", "addr", "add", "10.254.213.2/30", "dev", "dcv-sb");
        await NetworkNamespace.ExecAsync(Guest, "ip", "link", "set", "dcv-sb", "up");
        ready = true;
    }

    public async ValueTask DisposeAsync()
    {
        if (ready)
        {
            await NetworkNamespace.DeleteAsync(Host);
            await NetworkNamespace.DeleteAsync(Guest);
        }
    }

    private static TcShaper CreateSut() => new(Host);

    [Theory]
    [InlineData("Basic")]
    [InlineData("Standard")]
    public async Task Apply_Tier_ThroughputWithin15PercentBothDirections(string tier)
    {
        NetworkNamespace.Require();
        var limit = tier == "Basic" ? BandwidthTiers.Basic : BandwidthTiers.Standard;
        var shaper = CreateSut();
        await shaper.ApplyAsync(Tap, limit, limit).Within(TimeBox.RealPart);
        try
        {
            var towardsGuest = await MeasureAsync(Host, Guest, GuestIp).Within(TimeSpan.FromMinutes(1));
            var fromGuest = await MeasureAsync(Guest, Host, HostIp).Within(TimeSpan.FromMinutes(1));
            var rate = (double)limit.AverageBytesPerSecond;
            output.WriteLine($"{tier}: towards guest {towardsGuest / rate:P1}, from guest {fromGuest / rate:P1} of {rate * 8 / 1e6} Mbit/s");
            Assert.InRange(towardsGuest / rate, 0.85, 1.15);
            Assert.InRange(fromGuest / rate, 0.85, 1.15);
        }
        finally
        {
            await shaper.RemoveAsync(Tap).Within(TimeBox.RealPart);
        }

        var links = await ProcessRunner.RunAsync("ip", ["-n", Host, "link", "show"]);
        Assert.DoesNotContain(TcShaper.IfbNameFor(Tap), links.StandardOutput, StringComparison.Ordinal);
        var qdiscs = await ProcessRunner.RunAsync("tc", ["-n", Host, "qdisc", "show", "dev", Tap]);
        Assert.DoesNotContain("htb", qdiscs.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Apply_UnknownDevice_ThrowsWithTcMessageAndLeavesNothing()
    {
        NetworkNamespace.Require();
        var shaper = CreateSut();
        var ex = await Assert.ThrowsAsync<ShapingException>(() => shaper.ApplyAsync("dcv-nope", BandwidthTiers.Basic, BandwidthTiers.Basic).Within(TimeBox.RealPart));
        Assert.Contains("dcv-nope", ex.Message, StringComparison.Ordinal);
        var links = await ProcessRunner.RunAsync("ip", ["-n", Host, "link", "show"]);
        Assert.DoesNotContain(TcShaper.IfbNameFor("dcv-nope"), links.StandardOutput, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => TcShaper.IfbNameFor("a;rm -rf /"));
    }

    [Fact]
    public async Task Probe_ThisKernel_ReportsWhatLibvirtLacks()
    {
        NetworkNamespace.Require();
        var support = await KernelShapingSupport.ProbeAsync().Within(TimeBox.RealPart);
        Assert.True(support.TcShaper, support.Missing);
        // Consistency: libvirt's path is usable exactly when none of its pieces is missing.
        Assert.Equal(!support.Missing.Contains("sfq") && !support.Missing.Contains("fw") && !support.Missing.Contains("police"), support.LibvirtBandwidth);
    }

    /// <summary>Sends for 4 s from <paramref name="fromNs"/> to a receiver in <paramref name="toNs"/>; returns the receive rate after the first second (burst excluded).</summary>
    private static async Task<double> MeasureAsync(string fromNs, string toNs, IPAddress toIp)
    {
        using var listener = NetworkNamespace.Listen(toNs, toIp);
        using var client = NetworkNamespace.NewSocket(fromNs);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        var acceptTask = listener.AcceptAsync();
        await client.ConnectAsync(toIp, port);
        using var server = await acceptTask;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(4));

        var send = Task.Run(async () =>
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    await client.SendAsync(buffer, SocketFlags.None, stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }

            client.Shutdown(SocketShutdown.Send);
        });

        var receiveBuffer = new byte[256 * 1024];
        var clock = Stopwatch.StartNew();
        long counted = 0;
        TimeSpan? windowStart = null;
        TimeSpan windowEnd = TimeSpan.Zero;
        while (true)
        {
            var n = await server.ReceiveAsync(receiveBuffer, SocketFlags.None);
            if (n == 0)
            {
                break;
            }

            var now = clock.Elapsed;
            if (now >= TimeSpan.FromSeconds(1) && now <= TimeSpan.FromSeconds(4))
            {
                windowStart ??= now;
                counted += n;
                windowEnd = now;
            }
        }

        await send;
        return counted / (windowEnd - windowStart!.Value).TotalSeconds;
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ShaperCollection
{
    public const string Name = "dcv shaper namespaces";
}
