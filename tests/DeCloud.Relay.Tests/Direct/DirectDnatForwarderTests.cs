using System.Net;
using DeCloud.Relay.Direct;
using DeCloud.Testing;

namespace DeCloud.Relay.Tests.Direct;

public sealed class DirectDnatForwarderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dcr-direct-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Records commands and answers like iptables would for chains and jumps that do not exist yet.</summary>
    private sealed class FakeIptables : IIptables
    {
        public List<string> Commands { get; } = [];

        public HashSet<string> Existing { get; } = [];

        public Task<(int ExitCode, string Error)> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
        {
            var line = string.Join(' ', arguments);
            Commands.Add(line);
            if (arguments.Contains("-L") || arguments.Contains("-C"))
            {
                return Task.FromResult(Existing.Contains(line) ? (0, string.Empty) : (1, "No chain/target/match by that name."));
            }

            return Task.FromResult((0, string.Empty));
        }
    }

    private DirectDnatForwarder CreateSut(FakeIptables iptables) =>
        new(new DirectModeOptions { PublicAddress = IPAddress.Parse("198.18.2.1"), PortRangeStart = 45000, PortRangeEnd = 45010, DatabasePath = Path.Combine(_dir, "direct.db") },
            iptables, null, null);

    [Fact]
    public async Task StartAsync_FreshHost_CreatesOwnChainsAndJumps()
    {
        var iptables = new FakeIptables();
        await using var sut = CreateSut(iptables);
        await sut.StartAsync().Within();
        Assert.Contains("-t nat -N DCR-DNAT", iptables.Commands);
        Assert.Contains("-t nat -I PREROUTING 1 -j DCR-DNAT", iptables.Commands);
        Assert.Contains("-t filter -N DCR-FWD", iptables.Commands);
        Assert.Contains("-t nat -F DCR-DNAT", iptables.Commands);
    }

    [Fact]
    public async Task AddMapping_Both_OneDnatRulePerProtocolWithComment()
    {
        var iptables = new FakeIptables();
        await using var sut = CreateSut(iptables);
        await sut.StartAsync().Within();
        var mapping = await sut.AddMappingAsync(new RelayMappingRequest(RelayProtocol.TcpAndUdp, "10.0.0.5", 22) { Name = "vm1-ssh" }).Within();
        Assert.Equal(45000, mapping.PublicPort);
        Assert.Contains("-t nat -A DCR-DNAT -d 198.18.2.1 -p tcp --dport 45000 -m comment --comment dcr:vm1-ssh -j DNAT --to-destination 10.0.0.5:22", iptables.Commands);
        Assert.Contains("-t nat -A DCR-DNAT -d 198.18.2.1 -p udp --dport 45000 -m comment --comment dcr:vm1-ssh -j DNAT --to-destination 10.0.0.5:22", iptables.Commands);
    }

    [Fact]
    public async Task StartAsync_AfterRestart_ReappliesStoredMappingsOnSamePorts()
    {
        var first = new FakeIptables();
        await using (var sut = CreateSut(first))
        {
            await sut.StartAsync().Within();
            await sut.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "10.0.0.5", 80) { Name = "web", PreferredPublicPort = 45007 }).Within();
        }

        var second = new FakeIptables();
        second.Existing.Add("-t nat -n -L DCR-DNAT");
        second.Existing.Add("-t nat -C PREROUTING -j DCR-DNAT");
        await using var restarted = CreateSut(second);
        await restarted.StartAsync().Within();
        Assert.DoesNotContain("-t nat -N DCR-DNAT", second.Commands);
        Assert.DoesNotContain("-t nat -I PREROUTING 1 -j DCR-DNAT", second.Commands);
        Assert.Contains(second.Commands, c => c.StartsWith("-t nat -A DCR-DNAT", StringComparison.Ordinal) && c.Contains("--dport 45007", StringComparison.Ordinal));
        Assert.Equal(45007, Assert.Single(restarted.Mappings).PublicPort);
    }

    [Fact]
    public async Task RemoveMapping_DeletesRulesAndReleasesPort()
    {
        var iptables = new FakeIptables();
        await using var sut = CreateSut(iptables);
        await sut.StartAsync().Within();
        var mapping = await sut.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "10.0.0.5", 80) { Name = "web" }).Within();
        Assert.True(await sut.RemoveMappingAsync("web").Within());
        Assert.Contains(iptables.Commands, c => c.StartsWith("-t nat -D DCR-DNAT", StringComparison.Ordinal));
        Assert.Empty(sut.Mappings);
        var again = await sut.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "10.0.0.6", 80) { Name = "other", PreferredPublicPort = mapping.PublicPort }).Within();
        Assert.Equal(mapping.PublicPort, again.PublicPort);
    }

    [Fact]
    public async Task AddMapping_HostNameTarget_RejectedNamingTheProperty()
    {
        await using var sut = CreateSut(new FakeIptables());
        await sut.StartAsync().Within();
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => sut.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "vm.local", 80)));
        Assert.Contains("TargetHost", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_BadChainPrefix_NamesTheProperty()
    {
        var options = new DirectModeOptions { ChainPrefix = "has space" };
        var ex = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Equal(nameof(DirectModeOptions.ChainPrefix), ex.ParamName);
    }
}
