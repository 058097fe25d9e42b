using System.Xml.Linq;
using CsCheck;
using DeCloud.Testing;
using DeCloud.Virtualization.DomainXml;
using DeCloud.Virtualization.Qos;

namespace DeCloud.Virtualization.Tests.DomainXml;

public sealed class DomainXmlWriterTests
{
    public static TheoryData<GuestArchitecture, string, string, bool> Matrix()
    {
        var data = new TheoryData<GuestArchitecture, string, string, bool>();
        foreach (var arch in new[] { GuestArchitecture.X86_64, GuestArchitecture.Aarch64 })
        {
            foreach (var quality in new[] { "Dedicated", "Standard", "Balanced", "Burstable" })
            {
                foreach (var bandwidth in new[] { "Basic", "Standard", "Performance", "Unmetered" })
                {
                    data.Add(arch, quality, bandwidth, false);
                    data.Add(arch, quality, bandwidth, true);
                }
            }
        }

        return data;
    }

    internal static CpuShare Quality(string tier) => tier switch
    {
        "Dedicated" => QualityTiers.Dedicated,
        "Standard" => QualityTiers.Standard,
        "Balanced" => QualityTiers.Balanced,
        "Burstable" => QualityTiers.Burstable,
        _ => throw new ArgumentOutOfRangeException(nameof(tier)),
    };

    internal static BandwidthLimit Bandwidth(string tier) => tier switch
    {
        "Basic" => BandwidthTiers.Basic,
        "Standard" => BandwidthTiers.Standard,
        "Performance" => BandwidthTiers.Performance,
        "Unmetered" => BandwidthTiers.Unmetered,
        _ => throw new ArgumentOutOfRangeException(nameof(tier)),
    };

    internal static DomainDefinition CreateSut(GuestArchitecture arch = GuestArchitecture.X86_64, CpuShare? quality = null, BandwidthLimit bandwidth = default, bool gpu = false) => new()
    {
        Name = "dcv-vm-1",
        Architecture = arch,
        Hypervisor = HypervisorKind.Qemu,
        VirtualCpus = 2,
        MemoryMiB = 2048,
        CpuShare = quality ?? QualityTiers.Standard,
        Disks = [new DiskDefinition("/var/lib/decloud/vms/dcv-vm-1/root.qcow2")],
        CloudInitSeedPath = "/var/lib/decloud/vms/dcv-vm-1/seed.iso",
        NetworkInterfaces = [new NetworkInterfaceDefinition { MacAddress = "52:54:00:AB:CD:EF", TargetDevice = "dcvtap1", Inbound = bandwidth, Outbound = bandwidth }],
        PassthroughDevices = gpu ? [PciAddress.Parse("0000:01:00.0"), PciAddress.Parse("01:00.1")] : [],
        SerialLogPath = "/var/log/decloud/dcv-vm-1.serial.log",
    };

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Render_EveryTierArchAndGpu_ValidatesWithVirtXmlValidate(GuestArchitecture arch, string quality, string bandwidth, bool gpu)
    {
        var validator = DeCloud.Testing.RealDependency.RequireExecutable("virt-xml-validate");
        var xml = DomainXmlWriter.Render(CreateSut(arch, Quality(quality), Bandwidth(bandwidth), gpu));
        var path = Path.Combine(Path.GetTempPath(), $"dcv-{Guid.NewGuid():N}.xml");
        await File.WriteAllTextAsync(path, xml);
        try
        {
            var result = await ProcessRunner.RunAsync(validator, [path, "domain"], TimeSpan.FromMinutes(1));
            Assert.True(result.ExitCode == 0, $"virt-xml-validate rejected:\n{result.StandardError}{result.StandardOutput}\n{xml}");
        }
        finally
        {
            File.Delete(path);
        }

        var doc = XDocument.Parse(xml);
        Assert.Equal(gpu ? 2 : 0, doc.Descendants("hostdev").Count());
        Assert.Equal(bandwidth == "Unmetered" ? 0 : 1, doc.Descendants("bandwidth").Count());
        Assert.Equal(arch == GuestArchitecture.Aarch64 ? "virt" : "q35", doc.Root!.Element("os")!.Element("type")!.Attribute("machine")!.Value);
    }

    [Theory]
    [InlineData("Basic", 1250, 2500, 256)]
    [InlineData("Standard", 6250, 12500, 1024)]
    [InlineData("Performance", 25000, 50000, 4096)]
    public void Render_BandwidthTier_UsesLibvirtKilobyteUnits(string tier, int average, int peak, int burst)
    {
        var doc = XDocument.Parse(DomainXmlWriter.Render(CreateSut(bandwidth: Bandwidth(tier))));
        foreach (var direction in new[] { "inbound", "outbound" })
        {
            var e = doc.Descendants(direction).Single();
            Assert.Equal(average.ToString(), e.Attribute("average")!.Value);
            Assert.Equal(peak.ToString(), e.Attribute("peak")!.Value);
            Assert.Equal(burst.ToString(), e.Attribute("burst")!.Value);
        }
    }

    [Fact]
    public void Render_TcShaperEnforcement_OmitsBandwidthElement()
    {
        var xml = DomainXmlWriter.Render(CreateSut(bandwidth: BandwidthTiers.Basic), BandwidthEnforcement.TcShaper);
        Assert.DoesNotContain("<bandwidth", xml, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Dedicated", 2048, null)]
    [InlineData("Standard", 1365, 66666)]
    [InlineData("Balanced", 1024, 50000)]
    [InlineData("Burstable", 512, 25000)]
    public void Render_QualityTier_CputuneFollowsFormula(string tier, int shares, int? quota)
    {
        var cputune = XDocument.Parse(DomainXmlWriter.Render(CreateSut(quality: Quality(tier)))).Root!.Element("cputune")!;
        Assert.Equal(shares.ToString(), cputune.Element("shares")!.Value);
        Assert.Equal("100000", cputune.Element("period")!.Value);
        Assert.Equal(quota?.ToString(), cputune.Element("quota")?.Value);
        Assert.Null(cputune.Element("emulator_quota"));
        Assert.Null(cputune.Element("global_quota"));
    }

    [Fact]
    public void Render_KvmAndAarch64_UsesHostCpuAndUefiPflash()
    {
        var doc = XDocument.Parse(DomainXmlWriter.Render(CreateSut(GuestArchitecture.Aarch64) with { Hypervisor = HypervisorKind.Kvm }));
        Assert.Equal("kvm", doc.Root!.Attribute("type")!.Value);
        Assert.Equal("host-passthrough", doc.Root.Element("cpu")!.Attribute("mode")!.Value);
        var loader = doc.Root.Element("os")!.Element("loader")!;
        Assert.Equal("pflash", loader.Attribute("type")!.Value);
        Assert.Equal("/usr/share/AAVMF/AAVMF_CODE.fd", loader.Value);
        Assert.Equal("/var/lib/libvirt/qemu/nvram/dcv-vm-1_VARS.fd", doc.Root.Element("os")!.Element("nvram")!.Value);
        Assert.Equal("org.qemu.guest_agent.0", doc.Descendants("channel").Single().Element("target")!.Attribute("name")!.Value);
        Assert.Single(doc.Descendants("rng"));
        Assert.NotNull(doc.Root.Element("features")!.Element("acpi"));
        Assert.Equal("vdb", doc.Descendants("disk").Last().Element("target")!.Attribute("dev")!.Value);
        Assert.NotNull(doc.Descendants("disk").Last().Element("readonly"));
    }

    [Fact]
    public void Render_SpecialCharactersInPaths_AreEscaped()
    {
        var xml = DomainXmlWriter.Render(CreateSut() with { KernelPath = "/boot/vmlinuz", KernelCommandLine = "console=ttyS0 x=<&>'\"" });
        Assert.Equal("console=ttyS0 x=<&>'\"", XDocument.Parse(xml).Root!.Element("os")!.Element("cmdline")!.Value);
    }

    [Theory]
    [InlineData("", "Name")]
    [InlineData("bad name", "Name")]
    [InlineData("-leadingdash", "Name")]
    public void Validate_BadName_NamesTheField(string name, string field)
    {
        var ex = Assert.Throws<ArgumentException>(() => CreateSut() with { Name = name } is var d ? DomainXmlWriter.Render(d) : null);
        Assert.Contains($"DomainDefinition.{field}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_AbsurdSizes_AreRejectedWithFieldNames()
    {
        Assert.Contains("VirtualCpus", Assert.Throws<ArgumentOutOfRangeException>(() => (CreateSut() with { VirtualCpus = 0 }).Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("VirtualCpus", Assert.Throws<ArgumentOutOfRangeException>(() => (CreateSut() with { VirtualCpus = 100_000 }).Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("MemoryMiB", Assert.Throws<ArgumentOutOfRangeException>(() => (CreateSut() with { MemoryMiB = long.MaxValue }).Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("CoreTwelfths", Assert.Throws<ArgumentOutOfRangeException>(() => (CreateSut() with { CpuShare = new CpuShare(13) }).Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("Disks", Assert.Throws<ArgumentException>(() => (CreateSut() with { Disks = [new DiskDefinition("relative.qcow2")] }).Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("MAC", Assert.Throws<ArgumentException>(() => (CreateSut() with { NetworkInterfaces = [new NetworkInterfaceDefinition { MacAddress = "zz" }] }).Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("AverageBytesPerSecond", Assert.Throws<ArgumentOutOfRangeException>(
            () => (CreateSut() with { NetworkInterfaces = [new NetworkInterfaceDefinition { Inbound = new BandwidthLimit(10, 0, 0) }] }).Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("PeakBytesPerSecond", Assert.Throws<ArgumentOutOfRangeException>(
            () => new BandwidthLimit(1_000_000, 500_000, 0).Validate()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PciAddressParse_RandomText_EitherParsesInRangeOrThrowsFormat()
    {
        Gen.String.Sample(text =>
        {
            try
            {
                var a = PciAddress.Parse(text);
                Assert.InRange(a.Slot, 0, 31);
                Assert.InRange(a.Function, 0, 7);
            }
            catch (FormatException)
            {
            }
            catch (ArgumentException) when (string.IsNullOrWhiteSpace(text))
            {
            }
        });
        Assert.Equal(new PciAddress(0, 0x3b, 0x1f, 7), PciAddress.Parse("0000:3b:1f.7"));
        Assert.Throws<FormatException>(() => PciAddress.Parse("0000:3b:20.0"));
        Assert.Throws<FormatException>(() => PciAddress.Parse("0000:01:00.0" + new string('0', 10_000)));
    }

    [Fact]
    public void BandwidthLimit_RandomValues_ValidateOrThrowNamingTheField()
    {
        Gen.Select(Gen.Long, Gen.Long, Gen.Long).Sample((avg, peak, burst) =>
        {
            var limit = new BandwidthLimit(avg, peak, burst);
            try
            {
                limit.Validate();
                var rate = limit.ToInterfaceRate();
                Assert.True(limit.IsUnlimited || rate.AverageKBps >= 8);
            }
            catch (ArgumentOutOfRangeException ex)
            {
                Assert.StartsWith("BandwidthLimit.", ex.Message, StringComparison.Ordinal);
            }
        });
    }
}
