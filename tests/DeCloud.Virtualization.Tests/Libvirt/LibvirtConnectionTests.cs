using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using DeCloud.Testing;
using DeCloud.Virtualization.Libvirt;
using DeCloud.Virtualization.Tests.Fixtures;

namespace DeCloud.Virtualization.Tests.Libvirt;

public sealed class LibvirtConnectionTests
{
    private static LibvirtConnection CreateSut()
    {
        TestDriver.Require();
        return LibvirtConnection.Open(TestDriver.Uri);
    }

    [Fact]
    public void NativeStructs_Layout_MatchesLibvirtAbi()
    {
        Assert.Equal(96, Unsafe.SizeOf<VirTypedParameter>());
        Assert.Equal(40, Unsafe.SizeOf<VirDomainInfo>());
        Assert.Equal(80, System.Runtime.InteropServices.Marshal.SizeOf<VirError>());
    }

    [Fact]
    public async Task OpenAsync_UnknownDriver_ThrowsLibvirtExceptionWithLibvirtsMessage()
    {
        TestDriver.Require();
        var ex = await Assert.ThrowsAsync<LibvirtException>(() => LibvirtConnection.OpenAsync("dcvbogus:///nowhere").Within());
        Assert.NotEqual(0, ex.Code);
        Assert.NotEqual(0, ex.ErrorDomain);
        Assert.Contains("dcvbogus", ex.Message, StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(ex.LibvirtMessage));
    }

    [Fact]
    public async Task Lifecycle_DefineStartDestroyUndefine_StatesFollow()
    {
        await using var conn = CreateSut();
        var name = TestDriver.UniqueName("life");
        using var domain = await conn.DefineAsync(TestDriver.DomainXml(name, memoryMiB: 96)).Within();
        Assert.Equal(name, domain.Name);
        Assert.NotEqual(Guid.Empty, domain.Uuid);
        Assert.Equal(DomainState.ShutOff, await domain.GetStateAsync().Within());

        await domain.StartAsync().Within();
        var info = await domain.GetInfoAsync().Within();
        Assert.Equal(DomainState.Running, info.State);
        Assert.Equal(96UL * 1024, info.MaxMemoryKiB);
        Assert.Equal(1, info.VirtualCpuCount);
        Assert.True(domain.IsActive());

        var xml = await domain.GetXmlAsync().Within();
        Assert.Contains($"<name>{name}</name>", xml, StringComparison.Ordinal);

        await domain.SuspendAsync().Within();
        Assert.Equal(DomainState.Paused, await domain.GetStateAsync().Within());
        await domain.ResumeAsync().Within();
        await domain.DestroyAsync().Within();
        Assert.Equal(DomainState.ShutOff, await domain.GetStateAsync().Within());

        await domain.UndefineAsync().Within();
        var gone = await Assert.ThrowsAsync<LibvirtException>(() => conn.LookupByNameAsync(name).Within());
        Assert.True(gone.IsDomainNotFound);
        Assert.Equal(LibvirtException.NoDomain, gone.Code);
    }

    [Fact]
    public async Task ShutdownAndReboot_RunningDomain_Succeed()
    {
        await using var conn = CreateSut();
        var name = TestDriver.UniqueName("shut");
        using var domain = await conn.DefineAndStartAsync(TestDriver.DomainXml(name)).Within();
        await domain.RebootAsync().Within();
        Assert.Equal(DomainState.Running, await domain.GetStateAsync().Within());
        await domain.ShutdownAsync().Within();
        Assert.Equal(DomainState.ShutOff, await domain.GetStateAsync().Within());
        await domain.UndefineAsync().Within();
    }

    [Fact]
    public async Task Lookup_ByNameAndUuid_ReturnSameDomain()
    {
        await using var conn = CreateSut();
        var name = TestDriver.UniqueName("look");
        using var domain = await conn.DefineAsync(TestDriver.DomainXml(name)).Within();
        using var byName = await conn.LookupByNameAsync(name).Within();
        using var byUuid = await conn.LookupByUuidAsync(domain.Uuid).Within();
        Assert.Equal(domain.Uuid, byName.Uuid);
        Assert.Equal(name, byUuid.Name);
        await domain.UndefineAsync().Within();
    }

    [Fact]
    public async Task Lookup_BadInput_ThrowsClearErrors()
    {
        await using var conn = CreateSut();
        Assert.Throws<ArgumentException>(() => conn.LookupByName("a/b"));
        Assert.Throws<ArgumentException>(() => conn.LookupByName(new string('x', 201)));
        Assert.Throws<ArgumentException>(() => conn.LookupByUuid(Guid.Empty));
        var missing = await Assert.ThrowsAsync<LibvirtException>(() => conn.LookupByUuidAsync(Guid.NewGuid()).Within());
        Assert.True(missing.IsDomainNotFound);
        Assert.Contains("virDomainLookupByUUIDString", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Define_MalformedXml_ThrowsXmlErrorAndDefinesNothing()
    {
        await using var conn = CreateSut();
        var before = conn.ListAllDomains();
        var count = before.Count;
        foreach (var d in before)
        {
            d.Dispose();
        }

        var ex = await Assert.ThrowsAsync<LibvirtException>(() => conn.DefineAsync("<domain type='test'><name>dcv-broken").Within());
        Assert.True(ex.IsXmlError, ex.Message);
        using (var all = new DomainList(conn.ListAllDomains()))
        {
            Assert.Equal(count, all.Items.Count);
        }

        var noName = await Assert.ThrowsAsync<LibvirtException>(() => conn.DefineAsync("<domain type='test'><memory>1024</memory></domain>").Within());
        Assert.NotEqual(0, noName.Code);
    }

    [Fact]
    public async Task ListAllDomains_Filters_SeparateActiveAndInactive()
    {
        await using var conn = CreateSut();
        var running = TestDriver.UniqueName("run");
        var stopped = TestDriver.UniqueName("stop");
        using var a = await conn.DefineAndStartAsync(TestDriver.DomainXml(running)).Within();
        using var b = await conn.DefineAsync(TestDriver.DomainXml(stopped)).Within();

        var active = await conn.ListAllDomainsAsync(DomainListFilter.Active).Within();
        var inactive = await conn.ListAllDomainsAsync(DomainListFilter.Inactive).Within();
        var all = await conn.ListAllDomainsAsync().Within();
        try
        {
            Assert.Contains(active, d => d.Name == running);
            Assert.DoesNotContain(active, d => d.Name == stopped);
            Assert.Contains(inactive, d => d.Name == stopped);
            Assert.Contains(all, d => d.Name == running);
            Assert.Contains(all, d => d.Name == stopped);
        }
        finally
        {
            foreach (var d in active.Concat(inactive).Concat(all))
            {
                d.Dispose();
            }
        }

        await a.DestroyAsync().Within();
        await a.UndefineAsync().Within();
        await b.UndefineAsync().Within();
    }

    [Fact]
    public async Task Events_Lifecycle_ArriveInOrderFromEventLoop()
    {
        await using var conn = CreateSut();
        var name = TestDriver.UniqueName("evt");
        var seen = new ConcurrentQueue<DomainLifecycleEventKind>();
        var undefined = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        conn.DomainLifecycle += (_, e) =>
        {
            if (e.DomainName != name)
            {
                return;
            }

            seen.Enqueue(e.Kind);
            if (e.Kind == DomainLifecycleEventKind.Undefined)
            {
                undefined.TrySetResult();
            }
        };

        using (var domain = await conn.DefineAsync(TestDriver.DomainXml(name)).Within())
        {
            await domain.StartAsync().Within();
            await domain.DestroyAsync().Within();
            await domain.UndefineAsync().Within();
        }

        await undefined.Task.Within(what: "the Undefined event");
        Assert.Equal(
            [DomainLifecycleEventKind.Defined, DomainLifecycleEventKind.Started, DomainLifecycleEventKind.Stopped, DomainLifecycleEventKind.Undefined],
            seen.ToArray());
        Assert.NotNull(LibvirtRuntime.EventLoopThread);
        Assert.True(LibvirtRuntime.EventLoopThread!.IsAlive);
    }

    [Fact]
    public async Task InterfaceBandwidth_SetLive_ReadsBack()
    {
        await using var conn = CreateSut();
        var name = TestDriver.UniqueName("bw");
        using var domain = await conn.DefineAndStartAsync(TestDriver.DomainXml(name, tap: "dcvbw0")).Within();
        var wanted = new InterfaceBandwidth(new InterfaceRate(1250, 2500, 256), new InterfaceRate(6250, 12500, 1024));
        await domain.SetInterfaceBandwidthAsync("dcvbw0", wanted, live: true, persistent: false).Within();
        Assert.Equal(wanted, await domain.GetInterfaceBandwidthAsync("dcvbw0").Within());

        var unknown = await Assert.ThrowsAsync<LibvirtException>(() => domain.SetInterfaceBandwidthAsync("dcvnope", wanted, persistent: false).Within());
        Assert.Equal(LibvirtException.InvalidArgument, unknown.Code);
        Assert.Contains("dcvnope", unknown.LibvirtMessage, StringComparison.Ordinal);

        await domain.DestroyAsync().Within();
        await domain.UndefineAsync().Within();
    }

    [Fact]
    public async Task SchedulerParameters_TestDriver_ReportsWeight()
    {
        await using var conn = CreateSut();
        var name = TestDriver.UniqueName("sched");
        using var domain = await conn.DefineAsync(TestDriver.DomainXml(name)).Within();
        var parameters = await domain.GetSchedulerParametersAsync().Within();
        Assert.True(parameters.ContainsKey("weight"));
        Assert.Throws<ArgumentOutOfRangeException>(() => domain.SetCpuSchedule(new CpuSchedule(10, 5000, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => domain.SetCpuSchedule(new CpuSchedule(100_000, 10, 0)));
        await domain.UndefineAsync().Within();
    }

    [Fact]
    public async Task Domain_VanishedUnderneath_ThrowsNotFound()
    {
        await using var conn = CreateSut();
        var name = TestDriver.UniqueName("gone");
        using var domain = await conn.DefineAsync(TestDriver.DomainXml(name)).Within();
        using (var other = await conn.LookupByNameAsync(name).Within())
        {
            await other.UndefineAsync().Within();
        }

        var ex = await Assert.ThrowsAsync<LibvirtException>(() => domain.StartAsync().Within());
        Assert.True(ex.IsDomainNotFound);
    }

    [Fact]
    public async Task Dispose_Twice_IsSafeAndLaterCallsThrowObjectDisposed()
    {
        var conn = CreateSut();
        await conn.DisposeAsync();
        conn.Dispose();
        Assert.Throws<ObjectDisposedException>(() => conn.LookupByName("dcv-x"));
        Assert.False(conn.IsAlive);
    }
}

internal sealed class DomainList(IReadOnlyList<LibvirtDomain> items) : IDisposable
{
    public IReadOnlyList<LibvirtDomain> Items { get; } = items;

    public void Dispose()
    {
        foreach (var d in Items)
        {
            d.Dispose();
        }
    }
}
