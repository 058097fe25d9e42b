using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DeCloud.Testing;

namespace DeCloud.Relay.Tests.EndToEnd;

public sealed class TlsTests
{
    internal static X509Certificate2 CreateCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=dcr-relay-test", key, HashAlgorithmName.SHA256);
        using var ephemeral = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pfx), null);
    }

    [Theory]
    [InlineData(RelayStreamTransport.DedicatedConnection)]
    [InlineData(RelayStreamTransport.Multiplexed)]
    [InlineData(RelayStreamTransport.Automatic)]
    public async Task Tls_PinnedCertificate_ForwardsThroughTheEncryptedTunnel(RelayStreamTransport transport)
    {
        using var certificate = CreateCertificate();
        await using var harness = await RelayHarness.StartAsync(o => o.Certificate = certificate);
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync(configure: o =>
        {
            o.UseTls = true;
            o.PinnedCertificateSha256 = certificate.GetCertHashString(HashAlgorithmName.SHA256);
            o.StreamTransport = transport;
        });
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        await Net.EchoWorksAsync(mapping.PublicPort, "over tls");
        var expected = transport == RelayStreamTransport.DedicatedConnection ? RelayStreamTransport.DedicatedConnection : RelayStreamTransport.Multiplexed;
        Assert.Equal(expected, harness.Server.TransportOf("node-1"));
    }

    [Theory]
    [InlineData(RelayStreamTransport.DedicatedConnection)]
    [InlineData(RelayStreamTransport.Multiplexed)]
    public async Task Tls_ManyConcurrentStreams_AllEchoCorrectly(RelayStreamTransport transport)
    {
        using var certificate = CreateCertificate();
        await using var harness = await RelayHarness.StartAsync(o => o.Certificate = certificate);
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync(configure: o =>
        {
            o.UseTls = true;
            o.PinnedCertificateSha256 = certificate.GetCertHashString(HashAlgorithmName.SHA256);
            o.StreamTransport = transport;
        });
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();
        var tasks = Enumerable.Range(0, 16).Select(async i =>
        {
            using var socket = await Net.ConnectAsync(mapping.PublicPort);
            var payload = new byte[300_000 + i];
            new Random(i).NextBytes(payload);
            Assert.Equal(payload, await Net.RoundTripAsync(socket, payload));
        });
        await Task.WhenAll(tasks).Within(TimeSpan.FromMinutes(2));
        Assert.Equal(1, client.ConnectCount);
    }

    [Fact]
    public async Task Tls_WrongPin_NeverConnects()
    {
        using var certificate = CreateCertificate();
        await using var harness = await RelayHarness.StartAsync(o => o.Certificate = certificate);
        var client = await harness.StartClientAsync(configure: o =>
        {
            o.UseTls = true;
            o.PinnedCertificateSha256 = new string('0', 64);
        }, waitConnected: false);
        await RelayLoopbackTests.WaitForAsync(() => client.LastError is not null, "a TLS failure");
        Assert.IsType<System.Security.Authentication.AuthenticationException>(client.LastError);
        Assert.False(client.IsConnected);
    }
}
