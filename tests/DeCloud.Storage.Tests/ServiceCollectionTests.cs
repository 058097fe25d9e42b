using DeCloud.Storage.Moves;
using Microsoft.Extensions.DependencyInjection;

namespace DeCloud.Storage.Tests;

public sealed class ServiceCollectionTests
{
    [Fact]
    public void AddDeCloudStorage_CalledTwice_RegistersEachServiceOnce()
    {
        var services = new ServiceCollection();

        services.AddDeCloudStorage(o => o.RootPath = "/srv/volumes");
        var builder = services.AddDeCloudStorage(o => o.RootPath = "/srv/volumes").ConfigureMoves(o => o.CatchUpRounds = 2);

        Assert.Same(services, builder.Services);
        Assert.Single(services, d => d.ServiceType == typeof(BtrfsVolumes));
        Assert.Single(services, d => d.ServiceType == typeof(VolumeReceiver));
        Assert.Single(services, d => d.ServiceType == typeof(VolumeMove));
        Assert.Single(services, d => d.ServiceType == typeof(TimeProvider));
        using var provider = services.BuildServiceProvider();
        Assert.Equal("/srv/volumes", provider.GetRequiredService<BtrfsVolumes>().Root);
        Assert.Same(provider.GetRequiredService<VolumeMove>(), provider.GetRequiredService<VolumeMove>());
    }

    [Fact]
    public void AddDeCloudStorage_RelativeRoot_ResolveNamesTheProperty()
    {
        using var provider = new ServiceCollection().AddDeCloudStorage(o => o.RootPath = "relative/path").Services.BuildServiceProvider();

        var ex = Assert.Throws<ArgumentException>(() => provider.GetRequiredService<BtrfsVolumes>());

        Assert.Contains("RootPath", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void VolumeMoveOptions_OutOfRange_NamesTheProperty()
    {
        Assert.Contains("ChunkSize", Assert.Throws<ArgumentException>(() => new VolumeMoveOptions { ChunkSize = 10 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("CatchUpRounds", Assert.Throws<ArgumentException>(() => new VolumeMoveOptions { CatchUpRounds = -1 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("DestinationName", Assert.Throws<ArgumentException>(() => new VolumeMoveOptions { DestinationName = "../x" }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("MaxChunkSize", Assert.Throws<ArgumentException>(() => new VolumeReceiverOptions { MaxChunkSize = 1 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("ResumeGracePeriod", Assert.Throws<ArgumentException>(() => new VolumeReceiverOptions { ResumeGracePeriod = TimeSpan.FromSeconds(-1) }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("ResumeGracePeriod", Assert.Throws<ArgumentException>(() => new VolumeReceiverOptions { ResumeGracePeriod = TimeSpan.FromDays(2) }.Validate()).Message, StringComparison.Ordinal);
    }
}
