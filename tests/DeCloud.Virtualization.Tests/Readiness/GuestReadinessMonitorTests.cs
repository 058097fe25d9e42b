using System.Collections.Concurrent;
using System.Text;
using CsCheck;
using DeCloud.Testing;
using DeCloud.Virtualization.Readiness;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Virtualization.Tests.Readiness;

public sealed class GuestReadinessMonitorTests
{
    private const string ListeningOn8080 = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
           1: 0100007F:0016 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 100 0 0 10 0
        """;

    private sealed class FakeAgent : IGuestAgent
    {
        public ConcurrentDictionary<string, byte[]> Files { get; } = new();

        public Func<string, IReadOnlyList<string>, GuestCommandResult> Exec { get; set; } = (_, _) => new GuestCommandResult(0, "", "");

        public ConcurrentQueue<string> Commands { get; } = new();

        public Task<bool> PingAsync(CancellationToken cancellationToken = default) => Task.FromResult(true);

        public Task<byte[]?> ReadFileAsync(string path, int maxBytes, CancellationToken cancellationToken = default) =>
            Task.FromResult(Files.TryGetValue(path, out var b) ? b : null);

        public Task<GuestCommandResult> ExecuteAsync(string path, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken = default)
        {
            Commands.Enqueue(path + " " + string.Join(' ', arguments));
            return Task.FromResult(Exec(path, arguments));
        }
    }

    private static (GuestReadinessMonitor Monitor, FakeAgent Agent, FakeTimeProvider Time) CreateSut(params ServiceCheck[] checks)
    {
        var agent = new FakeAgent();
        var time = new FakeTimeProvider();
        return (new GuestReadinessMonitor(agent, checks, time), agent, time);
    }

    [Theory]
    [InlineData(null, "http", 80, null, ReadinessCheckKind.HttpGet)]
    [InlineData(null, "HTTPS", 443, null, ReadinessCheckKind.HttpGet)]
    [InlineData(null, "tcp", 5432, null, ReadinessCheckKind.TcpPort)]
    [InlineData(null, "ssh", 22, null, ReadinessCheckKind.TcpPort)]
    [InlineData(null, null, null, "/bin/true", ReadinessCheckKind.Command)]
    [InlineData(null, null, null, null, ReadinessCheckKind.CloudInitDone)]
    [InlineData(ReadinessCheckKind.Command, "http", 80, "/bin/true", ReadinessCheckKind.Command)]
    public void ResolveKind_FromProtocol_InfersCheck(ReadinessCheckKind? kind, string? protocol, int? port, string? command, ReadinessCheckKind expected) =>
        Assert.Equal(expected, new ServiceCheck { Name = "s", Kind = kind, Protocol = protocol, Port = port, CommandPath = command }.ResolveKind());

    [Fact]
    public void Constructor_BadChecks_NameTheField()
    {
        var agent = new FakeAgent();
        Assert.Contains("Port", Assert.Throws<ArgumentOutOfRangeException>(() => new GuestReadinessMonitor(agent, [new ServiceCheck { Name = "w", Protocol = "http" }])).Message);
        Assert.Contains("CommandPath", Assert.Throws<ArgumentException>(() => new GuestReadinessMonitor(agent, [new ServiceCheck { Name = "c", Kind = ReadinessCheckKind.Command, CommandPath = "rel" }])).Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => new GuestReadinessMonitor(agent, [new ServiceCheck { Name = "a" }, new ServiceCheck { Name = "a" }])).Message);
        Assert.Contains("Timeout", Assert.Throws<ArgumentOutOfRangeException>(() => new GuestReadinessMonitor(agent, [new ServiceCheck { Name = "t", Timeout = TimeSpan.Zero }])).Message);
        Assert.Contains("HttpPath", Assert.Throws<ArgumentException>(() => new GuestReadinessMonitor(agent, [new ServiceCheck { Name = "h", Protocol = "http", Port = 80, HttpPath = "/a'; rm -rf /" }])).Message);
    }

    [Fact]
    public async Task RunAsync_AllChecksPass_EveryServiceReadyWithEvents()
    {
        var (monitor, agent, _) = CreateSut(
            new ServiceCheck { Name = "boot" },
            new ServiceCheck { Name = "db", Protocol = "tcp", Port = 8080 },
            new ServiceCheck { Name = "web", Protocol = "http", Port = 8080, HttpPath = "/health" },
            new ServiceCheck { Name = "app", CommandPath = "/usr/bin/app-ready", CommandArguments = ["--quiet"] });
        agent.Files[GuestReadinessMonitor.CloudInitMarker] = "done"u8.ToArray();
        agent.Files["/proc/net/tcp"] = Encoding.ASCII.GetBytes(ListeningOn8080);
        var events = new ConcurrentQueue<ServiceReadinessChangedEventArgs>();
        monitor.Changed += (_, e) => events.Enqueue(e);

        var final = await monitor.RunAsync().Within();

        Assert.All(final, s => Assert.Equal(ReadinessState.Ready, s.State));
        Assert.Equal(4, events.Count);
        Assert.All(events, e => Assert.Equal(ReadinessState.Pending, e.Previous));
        Assert.Contains(agent.Commands, c => c.Contains("http://127.0.0.1:8080/health", StringComparison.Ordinal));
        Assert.Contains("/usr/bin/app-ready --quiet", agent.Commands);
    }

    [Fact]
    public async Task RunAsync_NeverReady_TimesOutAtItsOwnTimeout()
    {
        var (monitor, agent, time) = CreateSut(
            new ServiceCheck { Name = "fast", Protocol = "tcp", Port = 9, Timeout = TimeSpan.FromSeconds(10), Interval = TimeSpan.FromSeconds(1) },
            new ServiceCheck { Name = "slow", Protocol = "tcp", Port = 8080, Timeout = TimeSpan.FromSeconds(60), Interval = TimeSpan.FromSeconds(1) });
        agent.Files["/proc/net/tcp"] = Encoding.ASCII.GetBytes("header\n");
        var run = monitor.RunAsync();

        for (var i = 0; i < 12 && monitor.GetSnapshot()[0].State == ReadinessState.Pending; i++)
        {
            await WaitForTimersAsync(time);
            time.Advance(TimeSpan.FromSeconds(1));
        }

        await WaitUntilAsync(() => monitor.GetSnapshot()[0].State == ReadinessState.TimedOut);
        Assert.Equal(ReadinessState.Pending, monitor.GetSnapshot()[1].State);
        Assert.Contains("nothing listens on TCP 9", monitor.GetSnapshot()[0].Detail, StringComparison.Ordinal);

        agent.Files["/proc/net/tcp"] = Encoding.ASCII.GetBytes(ListeningOn8080);
        await WaitForTimersAsync(time);
        time.Advance(TimeSpan.FromSeconds(1));
        var final = await run.Within();
        Assert.Equal(ReadinessState.Ready, final[1].State);
    }

    [Fact]
    public async Task RunAsync_CommandCannotStart_Fails()
    {
        var (monitor, agent, _) = CreateSut(new ServiceCheck { Name = "x", CommandPath = "/nonexistent" });
        agent.Exec = (_, _) => throw CreateGuestAgentException();
        var final = await monitor.RunAsync().Within();
        Assert.Equal(ReadinessState.Failed, final[0].State);
    }

    [Fact]
    public void IsListening_RandomTables_NeverThrows()
    {
        Gen.String.Sample(text => { _ = ProcNetTcp.IsListening(text, 8080); });
        Gen.Int[0, 65535].Sample(port =>
        {
            var line = $"  0: 00000000:{port:X4} 00000000:0000 0A 0 0 0";
            Assert.True(ProcNetTcp.IsListening(line, port));
            Assert.False(ProcNetTcp.IsListening(line.Replace(" 0A ", " 01 "), port));
        });
        Assert.True(ProcNetTcp.IsListening(ListeningOn8080, 8080));
        Assert.False(ProcNetTcp.IsListening(ListeningOn8080, 22));
        Assert.False(ProcNetTcp.IsListening("0: 00000000:1F90", 8080));
        Assert.False(ProcNetTcp.IsListening(new string(':', 100_000), 8080));
    }

    [Fact]
    public void ParseReply_BadReplies_ThrowGuestAgentException()
    {
        Assert.Throws<GuestAgentException>(() => GuestAgent.ParseReply("guest-ping", "{\"error\":{\"class\":\"GenericError\"}}"));
        Assert.Throws<GuestAgentException>(() => GuestAgent.ParseReply("guest-ping", "{\"retu"));
        Assert.Throws<GuestAgentException>(() => GuestAgent.ParseReply("guest-ping", "[]"));
        Assert.Equal(42, GuestAgent.ParseReply("guest-file-open", "{\"return\":42}").GetInt32());
        Gen.String.Sample(text =>
        {
            try
            {
                GuestAgent.ParseReply("x", text);
            }
            catch (GuestAgentException)
            {
            }
        });
        Assert.Equal("""{"execute":"guest-exec","arguments":{"path":"/bin/sh"}}""", GuestAgent.BuildCommand("guest-exec", w => w.WriteString("path", "/bin/sh")));
    }

    private static GuestAgentException CreateGuestAgentException()
    {
        try
        {
            GuestAgent.ParseReply("guest-exec", "{\"error\":{\"desc\":\"Failed to execute child process\"}}");
        }
        catch (GuestAgentException ex)
        {
            return ex;
        }

        throw new InvalidOperationException("unreachable");
    }

    private static async Task WaitForTimersAsync(FakeTimeProvider time)
    {
        // Let the checking tasks reach their next Task.Delay before time moves.
        for (var i = 0; i < 20; i++)
        {
            await Task.Yield();
        }

        await Task.Run(() => { }).Within();
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Yield();
        }
    }
}
