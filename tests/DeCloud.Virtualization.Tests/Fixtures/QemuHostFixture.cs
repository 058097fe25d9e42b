using DeCloud.Testing;
using DeCloud.Virtualization.Libvirt;

namespace DeCloud.Virtualization.Tests.Fixtures;

/// <summary>
/// A real qemu:///system host for TCG guests: starts virtlogd and libvirtd when they are not running (and stops
/// them again at the end if it started them), removes dcv- domains left by a crashed run, and builds the guest
/// initramfs (busybox + qemu-guest-agent) for the installed Debian kernel.
/// </summary>
public sealed class QemuHostFixture : IAsyncLifetime
{
    public const string Uri = "qemu:///system";
    private readonly List<string> startedDaemons = [];

    public string? SkipReason { get; private set; }

    public string Kernel { get; private set; } = "";

    public string Initrd { get; private set; } = "";

    public string WorkDirectory { get; } = $"/var/lib/libvirt/images/dcv-tests-{Environment.ProcessId}";

    public async ValueTask InitializeAsync()
    {
        var missing = new List<string>();
        if (!RealDependency.IsRoot)
        {
            missing.Add("root");
        }

        foreach (var exe in new[] { "libvirtd", "virtlogd", "qemu-system-x86_64", "cpio", "busybox", "qemu-ga", "curl" })
        {
            if (RealDependency.FindExecutable(exe) is null && !File.Exists("/usr/bin/" + exe) && !File.Exists("/bin/" + exe))
            {
                missing.Add(exe);
            }
        }

        var kernel = Directory.Exists("/boot") ? Directory.GetFiles("/boot", "vmlinuz-*").OrderDescending(StringComparer.Ordinal).FirstOrDefault() : null;
        if (kernel is null)
        {
            missing.Add("linux-image-amd64 (/boot/vmlinuz-*)");
        }

        if (missing.Count > 0)
        {
            SkipReason = string.Join(", ", missing);
            return;
        }

        Kernel = kernel!;
        await EnsureDaemonsAsync();
        await RemoveLeftoversAsync();

        Directory.CreateDirectory(WorkDirectory);
        Initrd = Path.Combine(WorkDirectory, "initrd.img");
        var version = Path.GetFileName(Kernel)["vmlinuz-".Length..];
        var script = Path.Combine(AppContext.BaseDirectory, "Fixtures", "build-initramfs.sh");
        (await ProcessRunner.RunAsync("bash", [script, Initrd, version], TimeSpan.FromMinutes(2))).EnsureSuccess("build-initramfs.sh");
    }

    public void Require() => RealDependency.Require(SkipReason is null, $"a TCG-capable libvirt host ({SkipReason})");

    public async ValueTask DisposeAsync()
    {
        if (SkipReason is not null)
        {
            return;
        }

        await RemoveLeftoversAsync();
        if (Directory.Exists(WorkDirectory))
        {
            Directory.Delete(WorkDirectory, recursive: true);
        }

        // Stop only what this fixture started, by pid, newest first.
        foreach (var daemon in Enumerable.Reverse(startedDaemons))
        {
            var pidFile = $"/run/{daemon}.pid";
            if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid))
            {
                await ProcessRunner.RunAsync("kill", [pid.ToString()]);
            }
        }
    }

    private async Task EnsureDaemonsAsync()
    {
        if (await CanConnectAsync())
        {
            return;
        }

        foreach (var daemon in new[] { "virtlogd", "libvirtd" })
        {
            var running = await ProcessRunner.RunAsync("pgrep", ["-x", daemon]);
            if (running.ExitCode != 0)
            {
                (await ProcessRunner.RunAsync(daemon, ["-d"], TimeSpan.FromMinutes(1))).EnsureSuccess($"{daemon} -d");
                startedDaemons.Add(daemon);
            }
        }

        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (!await CanConnectAsync())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException("libvirtd did not accept connections on qemu:///system within a minute.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250));
        }
    }

    private static async Task<bool> CanConnectAsync()
    {
        try
        {
            await using var conn = await LibvirtConnection.OpenAsync(Uri).Within(TimeSpan.FromSeconds(30));
            return conn.IsAlive;
        }
        catch (LibvirtException)
        {
            return false;
        }
    }

    private static async Task RemoveLeftoversAsync()
    {
        // IFB devices of the tc shaper (dcvi<hash>) left by a crashed run.
        var links = await ProcessRunner.RunAsync("ip", ["-o", "link", "show", "type", "ifb"]);
        foreach (var line in links.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = line.Split(':', 3)[1].Trim().Split('@')[0];
            if (name.StartsWith("dcvi", StringComparison.Ordinal))
            {
                await ProcessRunner.RunAsync("ip", ["link", "del", name]);
            }
        }

        await using var conn = await LibvirtConnection.OpenAsync(Uri).Within(TimeSpan.FromSeconds(30));
        foreach (var domain in await conn.ListAllDomainsAsync())
        {
            using (domain)
            {
                if (!domain.Name.StartsWith("dcv-", StringComparison.Ordinal))
                {
                    continue;
                }

                try
                {
                    if (domain.IsActive())
                    {
                        await domain.DestroyAsync();
                    }

                    await domain.UndefineAsync();
                }
                catch (LibvirtException ex) when (ex.IsDomainNotFound)
                {
                }
            }
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class QemuHostCollection : ICollectionFixture<QemuHostFixture>
{
    public const string Name = "dcv qemu host";
}
