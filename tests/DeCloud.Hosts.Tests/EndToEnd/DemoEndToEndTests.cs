using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary><c>decloud demo</c>, the README's main command, as a process.</summary>
public sealed class DemoEndToEndTests
{
    [Fact]
    public async Task Demo_AsProcess_CompletesEveryStepAndExitsZero()
    {
        await using var demo = HostProcess.Start("demo");
        var exit = await demo.WaitForExitAsync(TimeSpan.FromMinutes(3));
        Assert.True(exit == 0, "decloud demo failed:\n" + demo.Output);
        Assert.Contains("auto-placed on node", demo.Output, StringComparison.Ordinal);
        Assert.Contains("placed on the chosen NAT'd node", demo.Output, StringComparison.Ordinal);
        Assert.Contains("(relay -> NAT'd node): sent and received \"hello through DeCloud\"", demo.Output, StringComparison.Ordinal);
        Assert.Contains("accepted by that node, refused by node", demo.Output, StringComparison.Ordinal);
        Assert.Contains("Shut down cleanly", demo.Output, StringComparison.Ordinal);
    }
}
