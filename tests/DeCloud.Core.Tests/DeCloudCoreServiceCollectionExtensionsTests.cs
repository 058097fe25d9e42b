using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DeCloud.Core.Tests;

public sealed class DeCloudCoreServiceCollectionExtensionsTests : IDisposable
{
    private readonly ControlPlaneDatabase _db = new();

    public void Dispose() => _db.Dispose();

    [Fact]
    public void AddDeCloudCore_CalledTwice_RegistersEachServiceOnce()
    {
        var services = new ServiceCollection();

        services.AddDeCloudCore(o => o.DatabasePath = _db.Path);
        var count = services.Count;
        services.AddDeCloudCore(o => o.DatabasePath = _db.Path);

        // Only the second configure delegate is new; every service is registered once.
        Assert.Equal(count + 1, services.Count);
        foreach (var type in new[] { typeof(NodeRegistry), typeof(VmLifecycle), typeof(VmEffectRunner), typeof(NodeHealthMonitor), typeof(INodeStore), typeof(IVmStore), typeof(TimeProvider) })
        {
            Assert.Single(services, d => d.ServiceType == type);
        }

        Assert.Equal(2, services.Count(d => d.ServiceType == typeof(IHostedService)));
    }

    [Fact]
    public async Task AddDeCloudCore_Resolved_ControlPlaneWorksWithEffectsAndObservers()
    {
        var ran = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var services = new ServiceCollection();
        services.AddDeCloudCore(o =>
            {
                o.DatabasePath = _db.Path;
                o.Registry.OfflineAfter = TimeSpan.FromMinutes(5);
            })
            .AddNodeRegistryObserver<CountingObserver>()
            .AddNodeRegistryObserver<CountingObserver>()
            .ConfigureVmEffects((_, effects) => effects
                .Register("mark", (c, _) =>
                {
                    ran.TrySetResult(c.IdempotencyKey);
                    return ValueTask.CompletedTask;
                })
                .OnCreate("mark"));
        await using var provider = services.BuildServiceProvider();

        var registry = provider.GetRequiredService<NodeRegistry>();
        Assert.Equal(TimeSpan.FromMinutes(5), registry.Options.OfflineAfter);
        await registry.RegisterAsync(ControlPlaneData.Registration(1)).Within();
        Assert.Equal(1, ((CountingObserver)provider.GetServices<INodeRegistryObserver>().Single()).Count);

        foreach (var hosted in provider.GetServices<IHostedService>())
        {
            await hosted.StartAsync(CancellationToken.None).Within();
        }

        var id = VmId.New();
        await provider.GetRequiredService<VmLifecycle>().CreateAsync(id, ControlPlaneData.Spec()).Within();
        Assert.Equal($"{id}/1/mark", await ran.Task.Within());

        foreach (var hosted in provider.GetServices<IHostedService>())
        {
            await hosted.StopAsync(CancellationToken.None).Within();
        }
    }

    [Fact]
    public void AddDeCloudCore_NoDatabasePath_FailsAtResolveNamingProperty()
    {
        var services = new ServiceCollection();
        services.AddDeCloudCore();
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<DeCloudValidationException>(() => provider.GetRequiredService<NodeRegistry>());

        Assert.Equal("DeCloudCoreOptions.DatabasePath", ex.Field);
    }

    private sealed class CountingObserver : INodeRegistryObserver
    {
        public int Count { get; private set; }

        public void OnNodeChanged(NodeChange change) => Count++;
    }
}
