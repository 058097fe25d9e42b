using System.Globalization;
using System.Xml.Linq;
using DeCloud.Virtualization.DomainXml;
using DeCloud.Virtualization.Qos;

namespace DeCloud.Benchmarks.Virtualization;

/// <summary>Shared inputs and the baselines the virtualization measurements compare against.</summary>
internal static class VirtualizationBaselines
{
    public static DomainDefinition SampleDomain { get; } = new()
    {
        Name = "dcv-bench-vm",
        Hypervisor = HypervisorKind.Kvm,
        VirtualCpus = 4,
        MemoryMiB = 8192,
        CpuShare = QualityTiers.Balanced,
        Disks = [new DiskDefinition("/var/lib/decloud/vms/dcv-bench-vm/root.qcow2")],
        CloudInitSeedPath = "/var/lib/decloud/vms/dcv-bench-vm/seed.iso",
        NetworkInterfaces = [new NetworkInterfaceDefinition { MacAddress = "52:54:00:12:34:56", TargetDevice = "dcvtap0", Inbound = BandwidthTiers.Standard, Outbound = BandwidthTiers.Standard }],
        PassthroughDevices = [PciAddress.Parse("0000:01:00.0")],
    };

    public static string TestDriverXml(string name) => $"""
        <domain type='test'>
          <name>{name}</name>
          <memory unit='MiB'>64</memory>
          <vcpu>1</vcpu>
          <os><type>hvm</type></os>
        </domain>
        """;

    /// <summary>The same document built the obvious way, with LINQ to XML (the baseline for our XmlWriter renderer).</summary>
    public static string RenderWithXDocument(DomainDefinition d)
    {
        var s = d.CpuShare.ToSchedule(d.VirtualCpus);
        static string I(long v) => v.ToString(CultureInfo.InvariantCulture);
        var nic = d.NetworkInterfaces[0];
        var rate = nic.Inbound.ToInterfaceRate();
        XElement Rate(string dir) => new(dir, new XAttribute("average", rate.AverageKBps), new XAttribute("peak", rate.PeakKBps), new XAttribute("burst", rate.BurstKiB));
        var doc = new XElement("domain", new XAttribute("type", "kvm"),
            new XElement("name", d.Name),
            new XElement("uuid", d.Uuid.ToString("D")),
            new XElement("memory", new XAttribute("unit", "MiB"), I(d.MemoryMiB)),
            new XElement("currentMemory", new XAttribute("unit", "MiB"), I(d.MemoryMiB)),
            new XElement("vcpu", new XAttribute("placement", "static"), I(d.VirtualCpus)),
            new XElement("cputune", new XElement("shares", I((long)s.Shares)), new XElement("period", I((long)s.PeriodMicroseconds)), new XElement("quota", I(s.QuotaMicroseconds))),
            new XElement("os", new XElement("type", new XAttribute("arch", "x86_64"), new XAttribute("machine", "q35"), "hvm"), new XElement("boot", new XAttribute("dev", "hd"))),
            new XElement("features", new XElement("acpi"), new XElement("apic")),
            new XElement("cpu", new XAttribute("mode", "host-passthrough")),
            new XElement("clock", new XAttribute("offset", "utc")),
            new XElement("on_poweroff", "destroy"), new XElement("on_reboot", "restart"), new XElement("on_crash", "destroy"),
            new XElement("devices",
                d.Disks.Select((disk, i) => Disk(disk.Path, disk.Format, false, (char)('a' + i))),
                Disk(d.CloudInitSeedPath!, "raw", true, (char)('a' + d.Disks.Count)),
                new XElement("interface", new XAttribute("type", "network"),
                    new XElement("mac", new XAttribute("address", nic.MacAddress!)),
                    new XElement("source", new XAttribute("network", nic.Source)),
                    new XElement("target", new XAttribute("dev", nic.TargetDevice!)),
                    new XElement("model", new XAttribute("type", "virtio")),
                    new XElement("bandwidth", Rate("inbound"), Rate("outbound"))),
                d.PassthroughDevices.Select(p => new XElement("hostdev", new XAttribute("mode", "subsystem"), new XAttribute("type", "pci"), new XAttribute("managed", "yes"),
                    new XElement("source", new XElement("address", new XAttribute("domain", $"0x{p.Domain:x4}"), new XAttribute("bus", $"0x{p.Bus:x2}"),
                        new XAttribute("slot", $"0x{p.Slot:x2}"), new XAttribute("function", $"0x{p.Function:x1}"))))),
                new XElement("serial", new XAttribute("type", "pty"), new XElement("target", new XAttribute("port", "0"))),
                new XElement("console", new XAttribute("type", "pty"), new XElement("target", new XAttribute("type", "serial"), new XAttribute("port", "0"))),
                new XElement("channel", new XAttribute("type", "unix"), new XElement("target", new XAttribute("type", "virtio"), new XAttribute("name", "org.qemu.guest_agent.0"))),
                new XElement("rng", new XAttribute("model", "virtio"), new XElement("backend", new XAttribute("model", "random"), "/dev/urandom")),
                new XElement("memballoon", new XAttribute("model", "virtio"))));
        return doc.ToString();

        static XElement Disk(string path, string format, bool ro, char letter) => new("disk", new XAttribute("type", "file"), new XAttribute("device", "disk"),
            new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", format)),
            new XElement("source", new XAttribute("file", path)),
            new XElement("target", new XAttribute("dev", "vd" + letter), new XAttribute("bus", "virtio")),
            ro ? new XElement("readonly") : null);
    }
}
