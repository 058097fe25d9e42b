using System.Net;
using System.Net.Sockets;
using DeCloud.Relay;
using DeCloud.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary><c>decloud relay</c> as its own process, with a <see cref="RelayClient"/> dialing in over loopback.</summary>
public sealed class AgentRelayRoleEndToEndTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dch-relay-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task RelayProcess_SecretFile_ClientPublishesPortAndBytesRoundTrip()
    {
        var secret = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        var secretFile = Path.Combine(_dir, "relay.secret");
        await File.WriteAllTextAsync(secretFile, secret + "\n");
        var first = HostProcess.FreePort();
        await using var relay = HostProcess.Start("relay", "--control", "127.0.0.1:0", "--ports", $"{first}-{first + 20}",
            "--db", Path.Combine(_dir, "relay.db"), "--secret-file", secretFile, "--public-host", "127.0.0.1", "--Relay:PublicAddress=127.0.0.1");
        var control = IPEndPoint.Parse((await relay.WaitForLineAsync(@"decloud relay control (\S+)")).Groups[1].Value);

        // The service behind the "NAT": an echo on loopback that the client forwards to.
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        var echoLoop = TcpEcho.ServeAsync(echo, once: true);

        await using var client = new RelayClient(new RelayClientOptions { ServerHost = "127.0.0.1", ServerPort = control.Port, NodeId = "node-a" }, new HmacChallengeCredentials(Convert.FromHexString(secret)));
        await client.StartAsync().Within();
        await client.WaitUntilConnectedAsync().Within();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", ((IPEndPoint)echo.LocalEndpoint).Port)).Within();
        Assert.InRange(mapping.PublicPort, first, first + 20);

        Assert.Equal("through the relay", await TcpEcho.RoundTripAsync("127.0.0.1", mapping.PublicPort, "through the relay"));
        await echoLoop.Within();

        // A node with the wrong secret is refused; the relay keeps serving.
        await using var impostor = new RelayClient(new RelayClientOptions { ServerHost = "127.0.0.1", ServerPort = control.Port, NodeId = "node-b", ReconnectMinDelay = TimeSpan.FromSeconds(5) },
            new HmacChallengeCredentials(new byte[32]));
        await impostor.StartAsync().Within();
        await relay.WaitForLineAsync("node-b");
        Assert.False(impostor.IsConnected);
        Assert.True(client.IsConnected);
        Assert.False(relay.HasExited);
    }

    [Theory]
    [InlineData("PortRange", "9-1")]
    [InlineData("ControlEndpoint", "nowhere")]
    [InlineData("SecretFile", "/nonexistent/dca9-secret")]
    public async Task RelayProcess_BadConfiguration_ExitsWithUsageAndNamesTheSetting(string setting, string value)
    {
        var secretFile = Path.Combine(_dir, "ok.secret");
        await File.WriteAllTextAsync(secretFile, "a relay secret of enough bytes");
        string[] args = ["relay", "--control", "127.0.0.1:0", "--db", Path.Combine(_dir, "r.db"), "--secret-file", secretFile, $"--Relay:{setting}={value}"];
        await using var relay = HostProcess.Start(args);
        Assert.Equal(2, await relay.WaitForExitAsync(TimeSpan.FromMinutes(1)));
        Assert.Contains(setting, relay.Output, StringComparison.Ordinal);
    }
}
