using System.Globalization;
using System.Text;
using System.Xml;
using DeCloud.Virtualization.Qos;

namespace DeCloud.Virtualization.DomainXml;

/// <summary>Where NIC bandwidth caps are enforced.</summary>
public enum BandwidthEnforcement
{
    /// <summary>libvirt's own <c>&lt;bandwidth&gt;</c> element (needs sch_sfq, cls_fw, act_police in the host kernel).</summary>
    Libvirt,

    /// <summary>The DeCloud tc shaper (HTB + IFB) on the tap; the XML carries no <c>&lt;bandwidth&gt;</c>, so the domain starts anywhere.</summary>
    TcShaper,
}

/// <summary>
/// Renders a <see cref="DomainDefinition"/> to libvirt domain XML: q35 for x86_64, virt + UEFI (pflash) for aarch64,
/// virtio disks/NICs/RNG, a serial console, the qemu guest agent channel, ACPI, <c>&lt;cputune&gt;</c> from the
/// <see cref="CpuShare"/>, <c>&lt;bandwidth&gt;</c> from each NIC's limits (omitted when unlimited or when the tc shaper enforces them).
/// Every output validates against libvirt's schema (<c>virt-xml-validate</c>).
/// </summary>
public static class DomainXmlWriter
{
    private static readonly XmlWriterSettings Settings = new()
    {
        Indent = true,
        IndentChars = "  ",
        OmitXmlDeclaration = true,
        Encoding = new UTF8Encoding(false),
        NewLineChars = "\n",
    };

    /// <summary>Validates and renders <paramref name="domain"/>.</summary>
    public static string Render(DomainDefinition domain, BandwidthEnforcement bandwidth = BandwidthEnforcement.Libvirt)
    {
        ArgumentNullException.ThrowIfNull(domain);
        domain.Validate();
        var sb = new StringBuilder(2048);
        using (var w = XmlWriter.Create(sb, Settings))
        {
            Write(w, domain, bandwidth);
        }

        return sb.Append('\n').ToString();
    }

    private static void Write(XmlWriter w, DomainDefinition d, BandwidthEnforcement bandwidth)
    {
        var arm = d.Architecture == GuestArchitecture.Aarch64;
        w.WriteStartElement("domain");
        w.WriteAttributeString("type", d.Hypervisor == HypervisorKind.Kvm ? "kvm" : "qemu");
        w.WriteElementString("name", d.Name);
        w.WriteElementString("uuid", d.Uuid.ToString("D"));
        WriteWithUnit(w, "memory", "MiB", d.MemoryMiB);
        WriteWithUnit(w, "currentMemory", "MiB", d.MemoryMiB);
        w.WriteStartElement("vcpu");
        w.WriteAttributeString("placement", "static");
        w.WriteString(Invariant(d.VirtualCpus));
        w.WriteEndElement();

        var schedule = d.CpuShare.ToSchedule(d.VirtualCpus);
        w.WriteStartElement("cputune");
        w.WriteElementString("shares", Invariant(schedule.Shares));
        w.WriteElementString("period", Invariant(schedule.PeriodMicroseconds));
        if (schedule.QuotaMicroseconds > 0)
        {
            w.WriteElementString("quota", Invariant(schedule.QuotaMicroseconds));
        }

        w.WriteEndElement();

        w.WriteStartElement("os");
        w.WriteStartElement("type");
        w.WriteAttributeString("arch", arm ? "aarch64" : "x86_64");
        w.WriteAttributeString("machine", arm ? "virt" : "q35");
        w.WriteString("hvm");
        w.WriteEndElement();
        if (arm)
        {
            w.WriteStartElement("loader");
            w.WriteAttributeString("readonly", "yes");
            w.WriteAttributeString("type", "pflash");
            w.WriteString(d.Firmware.LoaderPath);
            w.WriteEndElement();
            w.WriteStartElement("nvram");
            w.WriteAttributeString("template", d.Firmware.NvramTemplatePath);
            w.WriteString($"/var/lib/libvirt/qemu/nvram/{d.Name}_VARS.fd");
            w.WriteEndElement();
        }

        if (d.KernelPath is not null)
        {
            w.WriteElementString("kernel", d.KernelPath);
            if (d.InitrdPath is not null)
            {
                w.WriteElementString("initrd", d.InitrdPath);
            }

            if (d.KernelCommandLine is not null)
            {
                w.WriteElementString("cmdline", d.KernelCommandLine);
            }
        }
        else
        {
            w.WriteStartElement("boot");
            w.WriteAttributeString("dev", "hd");
            w.WriteEndElement();
        }

        w.WriteEndElement(); // os

        w.WriteStartElement("features");
        w.WriteElementString("acpi", string.Empty);
        if (arm)
        {
            w.WriteStartElement("gic");
            w.WriteAttributeString("version", "3");
            w.WriteEndElement();
        }
        else
        {
            w.WriteElementString("apic", string.Empty);
        }

        w.WriteEndElement();

        w.WriteStartElement("cpu");
        w.WriteAttributeString("mode", d.Hypervisor == HypervisorKind.Kvm ? "host-passthrough" : "maximum");
        w.WriteEndElement();

        w.WriteStartElement("clock");
        w.WriteAttributeString("offset", "utc");
        w.WriteEndElement();
        w.WriteElementString("on_poweroff", "destroy");
        w.WriteElementString("on_reboot", "restart");
        w.WriteElementString("on_crash", "destroy");

        w.WriteStartElement("devices");
        var letter = 'a';
        foreach (var disk in d.Disks)
        {
            WriteDisk(w, disk.Path, disk.Format, disk.ReadOnly, letter++);
        }

        if (d.CloudInitSeedPath is not null)
        {
            WriteDisk(w, d.CloudInitSeedPath, "raw", readOnly: true, letter);
        }

        foreach (var nic in d.NetworkInterfaces)
        {
            WriteInterface(w, nic, bandwidth);
        }

        foreach (var pci in d.PassthroughDevices)
        {
            w.WriteStartElement("hostdev");
            w.WriteAttributeString("mode", "subsystem");
            w.WriteAttributeString("type", "pci");
            w.WriteAttributeString("managed", "yes");
            w.WriteStartElement("source");
            w.WriteStartElement("address");
            w.WriteAttributeString("domain", Hex(pci.Domain, 4));
            w.WriteAttributeString("bus", Hex(pci.Bus, 2));
            w.WriteAttributeString("slot", Hex(pci.Slot, 2));
            w.WriteAttributeString("function", Hex(pci.Function, 1));
            w.WriteEndElement();
            w.WriteEndElement();
            w.WriteEndElement();
        }

        w.WriteStartElement("serial");
        w.WriteAttributeString("type", "pty");
        if (d.SerialLogPath is not null)
        {
            w.WriteStartElement("log");
            w.WriteAttributeString("file", d.SerialLogPath);
            w.WriteAttributeString("append", "off");
            w.WriteEndElement();
        }

        w.WriteStartElement("target");
        w.WriteAttributeString("port", "0");
        w.WriteEndElement();
        w.WriteEndElement();
        w.WriteStartElement("console");
        w.WriteAttributeString("type", "pty");
        w.WriteStartElement("target");
        w.WriteAttributeString("type", "serial");
        w.WriteAttributeString("port", "0");
        w.WriteEndElement();
        w.WriteEndElement();

        w.WriteStartElement("channel");
        w.WriteAttributeString("type", "unix");
        w.WriteStartElement("target");
        w.WriteAttributeString("type", "virtio");
        w.WriteAttributeString("name", "org.qemu.guest_agent.0");
        w.WriteEndElement();
        w.WriteEndElement();

        w.WriteStartElement("rng");
        w.WriteAttributeString("model", "virtio");
        w.WriteStartElement("backend");
        w.WriteAttributeString("model", "random");
        w.WriteString("/dev/urandom");
        w.WriteEndElement();
        w.WriteEndElement();

        w.WriteStartElement("memballoon");
        w.WriteAttributeString("model", "virtio");
        w.WriteEndElement();
        w.WriteEndElement(); // devices
        w.WriteEndElement(); // domain
    }

    private static void WriteDisk(XmlWriter w, string path, string format, bool readOnly, char letter)
    {
        w.WriteStartElement("disk");
        w.WriteAttributeString("type", "file");
        w.WriteAttributeString("device", "disk");
        w.WriteStartElement("driver");
        w.WriteAttributeString("name", "qemu");
        w.WriteAttributeString("type", format);
        w.WriteEndElement();
        w.WriteStartElement("source");
        w.WriteAttributeString("file", path);
        w.WriteEndElement();
        w.WriteStartElement("target");
        w.WriteAttributeString("dev", "vd" + letter);
        w.WriteAttributeString("bus", "virtio");
        w.WriteEndElement();
        if (readOnly)
        {
            w.WriteElementString("readonly", string.Empty);
        }

        w.WriteEndElement();
    }

    private static void WriteInterface(XmlWriter w, NetworkInterfaceDefinition nic, BandwidthEnforcement bandwidth)
    {
        w.WriteStartElement("interface");
        w.WriteAttributeString("type", nic.Attachment switch
        {
            NetworkAttachment.Bridge => "bridge",
            NetworkAttachment.Ethernet => "ethernet",
            _ => "network",
        });
        if (nic.MacAddress is not null)
        {
            w.WriteStartElement("mac");
            w.WriteAttributeString("address", nic.MacAddress.ToLowerInvariant());
            w.WriteEndElement();
        }

        if (nic.Attachment != NetworkAttachment.Ethernet)
        {
            w.WriteStartElement("source");
            w.WriteAttributeString(nic.Attachment == NetworkAttachment.Bridge ? "bridge" : "network", nic.Source);
            w.WriteEndElement();
        }

        if (nic.TargetDevice is not null)
        {
            w.WriteStartElement("target");
            w.WriteAttributeString("dev", nic.TargetDevice);
            w.WriteEndElement();
        }

        w.WriteStartElement("model");
        w.WriteAttributeString("type", "virtio");
        w.WriteEndElement();

        if (bandwidth == BandwidthEnforcement.Libvirt && (!nic.Inbound.IsUnlimited || !nic.Outbound.IsUnlimited))
        {
            w.WriteStartElement("bandwidth");
            WriteRate(w, "inbound", nic.Inbound);
            WriteRate(w, "outbound", nic.Outbound);
            w.WriteEndElement();
        }

        w.WriteEndElement();
    }

    private static void WriteRate(XmlWriter w, string element, BandwidthLimit limit)
    {
        if (limit.IsUnlimited)
        {
            return;
        }

        var rate = limit.ToInterfaceRate();
        w.WriteStartElement(element);
        w.WriteAttributeString("average", Invariant(rate.AverageKBps));
        if (rate.PeakKBps != 0)
        {
            w.WriteAttributeString("peak", Invariant(rate.PeakKBps));
        }

        if (rate.BurstKiB != 0)
        {
            w.WriteAttributeString("burst", Invariant(rate.BurstKiB));
        }

        w.WriteEndElement();
    }

    private static void WriteWithUnit(XmlWriter w, string element, string unit, long value)
    {
        w.WriteStartElement(element);
        w.WriteAttributeString("unit", unit);
        w.WriteString(Invariant(value));
        w.WriteEndElement();
    }

    private static string Hex(int value, int digits) => "0x" + value.ToString("x" + Invariant(digits), CultureInfo.InvariantCulture);

    private static string Invariant<T>(T value)
        where T : IFormattable => value.ToString(null, CultureInfo.InvariantCulture);
}
