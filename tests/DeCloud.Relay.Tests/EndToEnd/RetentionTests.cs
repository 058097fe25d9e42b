using DeCloud.Testing;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Relay.Tests.EndToEnd;

public sealed class RetentionTests
{
    [Fact]
    public async Task UnclaimedMapping_AfterTheRetention_RemovedAndPortFreed()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var harness = await RelayHarness.StartAsync(o => o.MappingRetention = TimeSpan.FromHours(1), timeProvider: time);
        await using var echo = new TcpEcho();
        var gone = await harness.StartClientAsync("gone");
        var stays = await harness.StartClientAsync("stays");
        var old = await gone.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        var kept = await stays.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        await gone.DisposeAsync();
        await RelayLoopbackTests.WaitForAsync(() => !harness.Server.ConnectedNodes.Contains("gone"), "the relay seeing the node leave");

        time.Advance(TimeSpan.FromMinutes(30));
        Assert.Equal(0, await harness.Server.ExpireUnclaimedAsync());
        Assert.Single(harness.Server.GetMappings("gone"));

        time.Advance(TimeSpan.FromMinutes(31));
        await RelayLoopbackTests.WaitForAsync(() => harness.Server.GetMappings("gone").Count == 0, "the retention sweep");
        Assert.Equal(kept.PublicPort, Assert.Single(harness.Server.GetMappings("stays")).PublicPort);

        // The port is free again: another node may take it.
        var newcomer = await harness.StartClientAsync("newcomer");
        var taken = await newcomer.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port) { PreferredPublicPort = old.PublicPort }).Within();
        Assert.Equal(old.PublicPort, taken.PublicPort);
    }

    [Fact]
    public async Task StoredMapping_OlderThanTheRetentionAtStart_DroppedOthersKept()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var harness = await RelayHarness.StartAsync(o => o.MappingRetention = TimeSpan.FromDays(7), timeProvider: time);
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        await client.DisposeAsync();
        await RelayLoopbackTests.WaitForAsync(() => harness.Server.ConnectedNodes.Count == 0, "the node leaving");

        time.Advance(TimeSpan.FromDays(6));
        await harness.RestartServerAsync();
        Assert.Single(harness.Server.GetMappings("node-1"));

        time.Advance(TimeSpan.FromDays(2));
        await harness.RestartServerAsync();
        Assert.Empty(harness.Server.GetMappings("node-1"));
    }
}
