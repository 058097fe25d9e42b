using DeCloud.Virtualization.Libvirt;
using DeCloud.Virtualization.Qos;
using DeCloud.Virtualization.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace DeCloud.Virtualization.Tests;

public sealed class VirtualizationServiceCollectionExtensionsTests
{
    [Fact]
    public void AddDeCloudVirtualization_CalledTwice_RegistersOnce()
    {
        var services = new ServiceCollection();
        var builder = services.AddDeCloudVirtualization(o => o.ConnectionUri = TestDriver.Uri);
        var count = services.Count;
        services.AddDeCloudVirtualization();
        Assert.Same(services, builder.Services);
        Assert.Single(services, d => d.ServiceType == typeof(LibvirtConnection));
        Assert.Single(services, d => d.ServiceType == typeof(TcShaper));
        Assert.Single(services, d => d.ServiceType == typeof(NicBandwidthEnforcer));
        Assert.Single(services, d => d.ServiceType == typeof(IValidateOptions<VirtualizationOptions>));
        Assert.True(services.Count - count <= 1, "the second call may add only its configure action");
    }

    [Fact]
    public async Task AddDeCloudVirtualization_TestDriver_ResolvesOpenConnection()
    {
        TestDriver.Require();
        await using var provider = new ServiceCollection().AddDeCloudVirtualization(o => { o.ConnectionUri = TestDriver.Uri; o.BandwidthEnforcement = DeCloud.Virtualization.DomainXml.BandwidthEnforcement.TcShaper; }).Services.BuildServiceProvider();
        var conn = provider.GetRequiredService<LibvirtConnection>();
        Assert.True(conn.IsAlive);
        Assert.Same(conn, provider.GetRequiredService<LibvirtConnection>());
        Assert.Equal(DeCloud.Virtualization.DomainXml.BandwidthEnforcement.TcShaper, provider.GetRequiredService<NicBandwidthEnforcer>().Mode);
    }

    [Fact]
    public void Options_Invalid_FailNamingTheProperty()
    {
        using var provider = new ServiceCollection()
            .AddDeCloudVirtualization(o => { o.ConnectionUri = "nonsense"; o.BandwidthEnforcement = (DeCloud.Virtualization.DomainXml.BandwidthEnforcement)42; })
            .Services.BuildServiceProvider();
        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<VirtualizationOptions>>().Value);
        Assert.Contains("VirtualizationOptions.ConnectionUri", ex.Message, StringComparison.Ordinal);
        Assert.Contains("VirtualizationOptions.BandwidthEnforcement", ex.Message, StringComparison.Ordinal);
    }
}
