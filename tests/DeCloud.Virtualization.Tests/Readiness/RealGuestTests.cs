using System.Collections.Concurrent;
using System.Globalization;
using DeCloud.Testing;
using DeCloud.Virtualization.DomainXml;
using DeCloud.Virtualization.Libvirt;
using DeCloud.Virtualization.Qos;
using DeCloud.Virtualization.Readiness;
using DeCloud.Virtualization.Tests.Fixtures;

namespace DeCloud.Virtualization.Tests.Readiness;

/// <summary>A real TCG guest on qemu:///system: the Debian kernel with a busybox + qemu-guest-agent initramfs.</summary>
[Collection(QemuHostCollection.Name)]
public sealed class RealGuestTests(QemuHostFixture host, ITestOutputHelper output)
{
    private static readonly TimeSpan Boot = TimeSpan.FromMinutes(4);

    private DomainDefinition CreateDefinition(string name, string tap) => new()
    {
        Name = name,
        Hypervisor = HypervisorKind.Qemu,
        Architecture = GuestArchitecture.X86_64,
        VirtualCpus = 1,
        MemoryMiB = 256,
        CpuShare = QualityTiers.Dedicated,
        KernelPath = host.Kernel,
        InitrdPath = host.Initrd,
        KernelCommandLine = "console=ttyS0 panic=-1 loglevel=4",
        SerialLogPath = Path.Combine(host.WorkDirectory, name + ".serial.log"),
        CloudInitSeedPath = Path.Combine(host.WorkDirectory, name + ".seed.iso"),
        NetworkInterfaces = [new NetworkInterfaceDefinition { Attachment = NetworkAttachment.Ethernet, TargetDevice = tap, Inbound = BandwidthTiers.Basic, Outbound = BandwidthTiers.Basic }],
    };

    [Fact]
    public async Task Guest_FullLifecycle_ReadinessQosAndAgentShutdown()
    {
        host.Require();
        var suffix = Guid.NewGuid().ToString("N")[..6];
        var name = $"dcv-vm-{suffix}";
        var tap = $"dcvtap{suffix}";
        var definition = CreateDefinition(name, tap);
        await NoCloudSeed.WriteAsync(definition.CloudInitSeedPath!, "#cloud-config\n", $"instance-id: {name}\nlocal-hostname: {name}\n", "version: 2\n");

        await using var conn = await LibvirtConnection.OpenAsync(QemuHostFixture.Uri).Within(TimeSpan.FromMinutes(1));
        await using var enforcer = await NicBandwidthEnforcer.CreateAsync(conn).Within(TimeSpan.FromMinutes(1));
        var support = await KernelShapingSupport.ProbeAsync();
        output.WriteLine($"enforcement: {enforcer.Mode} (missing: {support.Missing})");

        if (!support.LibvirtBandwidth)
        {
            // libvirt's own <bandwidth> cannot start here; the failed start must not leave a half-defined domain.
            var refused = await Assert.ThrowsAsync<LibvirtException>(() => conn.DefineAndStartAsync(DomainXmlWriter.Render(definition, BandwidthEnforcement.Libvirt)).Within(Boot));
            output.WriteLine($"libvirt <bandwidth> refused as expected: {refused.LibvirtMessage}");
            Assert.True((await Assert.ThrowsAsync<LibvirtException>(() => conn.LookupByNameAsync(name).Within())).IsDomainNotFound);
        }

        var lifecycle = new ConcurrentQueue<DomainLifecycleEventKind>();
        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var agentConnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        conn.DomainLifecycle += (_, e) =>
        {
            if (e.DomainName != name)
            {
                return;
            }

            lifecycle.Enqueue(e.Kind);
            if (e.Kind == DomainLifecycleEventKind.Stopped)
            {
                stopped.TrySetResult();
            }
        };
        conn.AgentLifecycle += (_, e) =>
        {
            if (e.DomainName == name && e.Connected)
            {
                agentConnected.TrySetResult();
            }
        };
        var shapingRemoved = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        enforcer.ShapingRemoved += (_, device) =>
        {
            if (device == tap)
            {
                shapingRemoved.TrySetResult();
            }
        };

        using var domain = await conn.DefineAndStartAsync(DomainXmlWriter.Render(definition, enforcer.Mode)).Within(Boot);
        try
        {
            // Bandwidth: the tier is enforced on the tap the way this host can.
            await enforcer.ApplyAsync(domain, BandwidthTiers.Basic, BandwidthTiers.Basic).Within(TimeSpan.FromMinutes(1));
            if (enforcer.Mode == BandwidthEnforcement.TcShaper)
            {
                var qdisc = await ProcessRunner.RunAsync("tc", ["qdisc", "show", "dev", tap]);
                Assert.Contains("htb", qdisc.StandardOutput, StringComparison.Ordinal);
                Assert.Contains("ingress", qdisc.StandardOutput, StringComparison.Ordinal);
                Assert.Equal(0, (await ProcessRunner.RunAsync("ip", ["link", "show", TcShaper.IfbNameFor(tap)])).ExitCode);
            }

            // The agent: connected event and ping, within minutes under TCG.
            var agent = new GuestAgent(domain);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await agent.WaitUntilConnectedAsync(Boot).Within(Boot + TimeSpan.FromMinutes(1));
            output.WriteLine($"agent answered after {clock.Elapsed.TotalSeconds:F1} s");
            await agentConnected.Task.Within(TimeSpan.FromMinutes(1), "the agent-connected event");

            // Readiness: every check type, with per-service timeouts and all four states.
            var monitor = new GuestReadinessMonitor(agent,
            [
                new ServiceCheck { Name = "cloud-init", Timeout = TimeSpan.FromMinutes(2), Interval = TimeSpan.FromSeconds(1) },
                new ServiceCheck { Name = "tcp", Protocol = "tcp", Port = 8080, Timeout = TimeSpan.FromMinutes(2), Interval = TimeSpan.FromSeconds(1) },
                new ServiceCheck { Name = "web", Protocol = "http", Port = 8080, HttpPath = "/index.html", Timeout = TimeSpan.FromMinutes(2), Interval = TimeSpan.FromSeconds(1) },
                // The command check also proves the NoCloud seed: the guest mounts it (vda, iso9660) and reads meta-data.
                new ServiceCheck
                {
                    Name = "cmd", CommandPath = "/bin/sh", Timeout = TimeSpan.FromMinutes(2),
                    CommandArguments = ["-c", $"mount -t iso9660 -o ro /dev/vda /mnt/seed 2>/dev/null; grep -q 'instance-id: {name}' /mnt/seed/meta-data && test -f /mnt/seed/user-data && test -f /mnt/seed/network-config"],
                },
                new ServiceCheck { Name = "never", CommandPath = "/bin/false", Timeout = TimeSpan.FromSeconds(5), Interval = TimeSpan.FromSeconds(1) },
                new ServiceCheck { Name = "broken", CommandPath = "/dcv/nonexistent", Timeout = TimeSpan.FromMinutes(1) },
                new ServiceCheck { Name = "closed-port", Protocol = "tcp", Port = 9, Timeout = TimeSpan.FromSeconds(4), Interval = TimeSpan.FromSeconds(1) },
            ]);
            var transitions = new ConcurrentQueue<ServiceReadinessChangedEventArgs>();
            monitor.Changed += (_, e) => transitions.Enqueue(e);
            Assert.All(monitor.GetSnapshot(), s => Assert.Equal(ReadinessState.Pending, s.State));
            var final = (await monitor.RunAsync().Within(TimeSpan.FromMinutes(3))).ToDictionary(s => s.Name);
            foreach (var s in final.Values)
            {
                output.WriteLine($"{s.Name}: {s.Kind} {s.State} ({s.Detail})");
            }

            Assert.Equal(ReadinessState.Ready, final["cloud-init"].State);
            Assert.Equal(ReadinessCheckKind.TcpPort, final["tcp"].Kind);
            Assert.Equal(ReadinessState.Ready, final["tcp"].State);
            Assert.Equal(ReadinessCheckKind.HttpGet, final["web"].Kind);
            Assert.Equal(ReadinessState.Ready, final["web"].State);
            Assert.Equal(ReadinessState.Ready, final["cmd"].State);
            Assert.Equal(ReadinessState.TimedOut, final["never"].State);
            Assert.Equal(ReadinessState.Failed, final["broken"].State);
            Assert.Equal(ReadinessState.TimedOut, final["closed-port"].State);
            Assert.Equal(final.Count, transitions.Count);

            // Live CPU quota: Burstable's quarter core lands in the vCPU cgroup.
            var burstable = QualityTiers.Burstable.ToSchedule(1);
            await domain.SetCpuScheduleAsync(burstable, live: true, persistent: false).Within(TimeSpan.FromMinutes(1));
            var parameters = await domain.GetSchedulerParametersAsync().Within();
            Assert.Equal(25_000, parameters["vcpu_quota"]);
            Assert.Equal(100_000, parameters["vcpu_period"]);
            Assert.Equal(256, parameters["cpu_shares"]);
            var quota = ReadVcpuQuota(name);
            output.WriteLine($"vcpu0 cgroup quota: {quota}");
            Assert.Equal(25_000, quota);

            // Agent shutdown: the guest powers off, the stop event arrives, the tc shaping goes with it.
            await agent.ShutdownAsync().Within(TimeSpan.FromMinutes(1));
            await stopped.Task.Within(TimeSpan.FromMinutes(2), "the Stopped event after agent shutdown");
            Assert.Equal(DomainState.ShutOff, await domain.GetStateAsync().Within());
            if (enforcer.Mode == BandwidthEnforcement.TcShaper)
            {
                await shapingRemoved.Task.Within(TimeSpan.FromMinutes(1), "the shaping removal");
                Assert.NotEqual(0, (await ProcessRunner.RunAsync("ip", ["link", "show", TcShaper.IfbNameFor(tap)])).ExitCode);
            }

            await domain.UndefineAsync().Within(TimeSpan.FromMinutes(1));
            Assert.True((await Assert.ThrowsAsync<LibvirtException>(() => conn.LookupByNameAsync(name).Within())).IsDomainNotFound);
            // qemu also reports Resumed while starting; the order of the milestones is what matters.
            var seen = lifecycle.ToList();
            output.WriteLine("lifecycle: " + string.Join(", ", seen));
            Assert.True(seen.IndexOf(DomainLifecycleEventKind.Defined) >= 0, "no Defined event");
            Assert.True(seen.IndexOf(DomainLifecycleEventKind.Defined) < seen.IndexOf(DomainLifecycleEventKind.Started), "Defined must precede Started");
            Assert.True(seen.IndexOf(DomainLifecycleEventKind.Started) < seen.IndexOf(DomainLifecycleEventKind.Stopped), "Started must precede Stopped");
        }
        finally
        {
            try
            {
                if (domain.IsActive())
                {
                    await domain.DestroyAsync();
                }

                await domain.UndefineAsync();
            }
            catch (LibvirtException)
            {
            }
        }
    }

    private static long ReadVcpuQuota(string name)
    {
        // cgroup v1: .../cpu/machine/qemu-N-<name>.libvirt-qemu/vcpu0/cpu.cfs_quota_us; v2: .../vcpu0/cpu.max ("25000 100000").
        foreach (var root in new[] { "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup" })
        {
            if (!Directory.Exists(root))
            {
                continue;
            }

            var dir = Directory.EnumerateDirectories(root, "*", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 4, IgnoreInaccessible = true })
                .FirstOrDefault(d => d.Contains(name, StringComparison.Ordinal) && Directory.Exists(Path.Combine(d, "vcpu0")));
            if (dir is null)
            {
                continue;
            }

            var v1 = Path.Combine(dir, "vcpu0", "cpu.cfs_quota_us");
            if (File.Exists(v1))
            {
                return long.Parse(File.ReadAllText(v1).Trim(), CultureInfo.InvariantCulture);
            }

            var v2 = Path.Combine(dir, "vcpu0", "cpu.max");
            if (File.Exists(v2))
            {
                return long.Parse(File.ReadAllText(v2).Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"No vcpu0 cgroup found for {name}.");
    }
}
