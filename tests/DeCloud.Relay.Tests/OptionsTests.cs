using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace DeCloud.Relay.Tests;

public sealed class OptionsTests
{
    [Fact]
    public void ServerOptions_Defaults_AreValid() => new RelayServerOptions().Validate();

    [Fact]
    public void ServerOptions_InvertedRange_NamesTheProperty()
    {
        var ex = Assert.Throws<ArgumentException>(() => new RelayServerOptions { PortRangeStart = 50000, PortRangeEnd = 40000 }.Validate());
        Assert.Equal(nameof(RelayServerOptions.PortRangeEnd), ex.ParamName);
        Assert.Contains("PortRangeEnd", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4097)]
    public void ServerOptions_PendingStreamOpensOutOfRange_NamesTheProperty(int value)
    {
        var ex = Assert.Throws<ArgumentException>(() => new RelayServerOptions { MaxPendingStreamOpens = value }.Validate());
        Assert.Equal(nameof(RelayServerOptions.MaxPendingStreamOpens), ex.ParamName);
        Assert.Contains("4096", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ClientOptions_TlsWithoutPin_NamesThePinProperty()
    {
        var ex = Assert.Throws<ArgumentException>(() => new RelayClientOptions { ServerHost = "r", NodeId = "n", UseTls = true }.Validate());
        Assert.Equal(nameof(RelayClientOptions.PinnedCertificateSha256), ex.ParamName);
    }

    [Fact]
    public void Options_DefaultTransport_DedicatedWithoutTlsMultiplexedWithTls()
    {
        Assert.Equal(RelayStreamTransport.Automatic, new RelayServerOptions().StreamTransport);
        Assert.Equal(RelayStreamTransport.DedicatedConnection, new RelayClientOptions().EffectiveStreamTransport);
        Assert.Equal(RelayStreamTransport.Multiplexed, new RelayClientOptions { UseTls = true }.EffectiveStreamTransport);
        Assert.Equal(RelayStreamTransport.DedicatedConnection, new RelayClientOptions { UseTls = true, StreamTransport = RelayStreamTransport.DedicatedConnection }.EffectiveStreamTransport);
    }

    [Fact]
    public void ServerOptions_UnknownTransportOrNoHandshakes_NamesTheProperty()
    {
        var transport = Assert.Throws<ArgumentException>(() => new RelayServerOptions { StreamTransport = (RelayStreamTransport)9 }.Validate());
        Assert.Equal(nameof(RelayServerOptions.StreamTransport), transport.ParamName);
        var handshakes = Assert.Throws<ArgumentException>(() => new RelayServerOptions { MaxPendingHandshakes = 0 }.Validate());
        Assert.Equal(nameof(RelayServerOptions.MaxPendingHandshakes), handshakes.ParamName);
    }

    [Fact]
    public void ClientOptions_BadPoolOrTransport_NamesTheProperty()
    {
        var pool = Assert.Throws<ArgumentException>(() => new RelayClientOptions { ServerHost = "r", NodeId = "n", DataConnectionPoolSize = -1 }.Validate());
        Assert.Equal(nameof(RelayClientOptions.DataConnectionPoolSize), pool.ParamName);
        var idle = Assert.Throws<ArgumentException>(() => new RelayClientOptions { ServerHost = "r", NodeId = "n", DataConnectionPoolIdleTimeout = TimeSpan.Zero }.Validate());
        Assert.Equal(nameof(RelayClientOptions.DataConnectionPoolIdleTimeout), idle.ParamName);
        var transport = Assert.Throws<ArgumentException>(() => new RelayClientOptions { ServerHost = "r", NodeId = "n", StreamTransport = (RelayStreamTransport)9 }.Validate());
        Assert.Equal(nameof(RelayClientOptions.StreamTransport), transport.ParamName);
    }

    [Fact]
    public void MappingRequest_BadPort_NamesTheProperty()
    {
        var ex = Assert.Throws<ArgumentException>(() => new RelayMappingRequest(RelayProtocol.Tcp, "h", 70000).Validate());
        Assert.Equal(nameof(RelayMappingRequest.TargetPort), ex.ParamName);
    }
}

public sealed class DependencyInjectionTests
{
    [Fact]
    public void AddDeCloudRelayServer_CalledTwice_RegistersOnce()
    {
        var services = new ServiceCollection();
        services.AddDeCloudRelayServer(o => o.ControlEndPoint = new IPEndPoint(IPAddress.Loopback, 0)).UseHmacSecret(new byte[16]);
        services.AddDeCloudRelayServer().UseHmacSecret(new byte[16]);
        Assert.Single(services, d => d.ServiceType == typeof(RelayServer));
        Assert.Single(services, d => d.ServiceType == typeof(IHostedService));
        Assert.Single(services, d => d.ServiceType == typeof(IRelayAuthenticator));
        Assert.Single(services, d => d.ServiceType == typeof(IValidateOptions<RelayServerOptions>));
    }

    [Fact]
    public void AddDeCloudRelayClient_CalledTwice_RegistersOnce()
    {
        var services = new ServiceCollection();
        services.AddDeCloudRelayClient(o => o.ServerHost = "relay").UseHmacSecret(new byte[16]);
        services.AddDeCloudRelayClient().UseHmacSecret(new byte[16]);
        Assert.Single(services, d => d.ServiceType == typeof(RelayClient));
        Assert.Single(services, d => d.ServiceType == typeof(IHostedService));
    }

    [Fact]
    public void AddDeCloudRelayClient_InvalidOptions_ValidationNamesTheProperty()
    {
        var services = new ServiceCollection();
        services.AddDeCloudRelayClient(o => o.ServerHost = "relay").UseHmacSecret(new byte[16]);
        using var provider = services.BuildServiceProvider();
        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<RelayClientOptions>>().Value);
        Assert.Contains("NodeId", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HostedServices_ServerAndClient_PublishConfiguredMapping()
    {
        var server = new ServiceCollection();
        server.AddDeCloudRelayServer(o =>
        {
            o.ControlEndPoint = new IPEndPoint(IPAddress.Loopback, 0);
            o.PublicAddress = IPAddress.Loopback;
            o.PortRangeStart = 31000;
            o.PortRangeEnd = 31039;
        }).UseHmacSecret(EndToEnd.RelayHarness.Secret);
        await using var serverProvider = server.BuildServiceProvider();
        var serverHosted = serverProvider.GetServices<IHostedService>().Single();
        await serverHosted.StartAsync(CancellationToken.None);
        var relay = serverProvider.GetRequiredService<RelayServer>();

        await using var echo = new EndToEnd.TcpEcho();
        var client = new ServiceCollection();
        client.AddDeCloudRelayClient(o =>
        {
            o.ServerHost = "127.0.0.1";
            o.ServerPort = relay.ControlEndPoint!.Port;
            o.NodeId = "di-node";
        }).UseHmacSecret(EndToEnd.RelayHarness.Secret).AddMapping(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port));
        await using var clientProvider = client.BuildServiceProvider();
        var clientHosted = clientProvider.GetServices<IHostedService>().Single();
        await clientHosted.StartAsync(CancellationToken.None);
        var relayClient = clientProvider.GetRequiredService<RelayClient>();
        await EndToEnd.RelayLoopbackTests.WaitForAsync(() => relayClient.Mappings.Count == 1, "mapping published by the hosted service");
        await EndToEnd.Net.EchoWorksAsync(relayClient.Mappings[0].PublicPort);
        await clientHosted.StopAsync(CancellationToken.None);
        await serverHosted.StopAsync(CancellationToken.None);
    }
}
