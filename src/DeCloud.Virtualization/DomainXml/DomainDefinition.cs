using System.Text.RegularExpressions;
using DeCloud.Virtualization.Qos;

namespace DeCloud.Virtualization.DomainXml;

/// <summary>The guest CPU architecture and its machine type.</summary>
public enum GuestArchitecture
{
    /// <summary>x86_64 on the q35 machine (PCIe, AHCI).</summary>
    X86_64,

    /// <summary>aarch64 on the virt machine, booted by UEFI (AAVMF).</summary>
    Aarch64,
}

/// <summary>The libvirt domain type.</summary>
public enum HypervisorKind
{
    /// <summary>Hardware virtualization (<c>type='kvm'</c>): production.</summary>
    Kvm,

    /// <summary>qemu's TCG emulator (<c>type='qemu'</c>): where KVM is missing or unusable.</summary>
    Qemu,
}

/// <summary>A disk image file.</summary>
/// <param name="Path">Absolute path of the image.</param>
/// <param name="Format">Image format: <c>qcow2</c> or <c>raw</c>.</param>
/// <param name="ReadOnly">Attach read-only.</param>
public sealed record DiskDefinition(string Path, string Format = "qcow2", bool ReadOnly = false);

/// <summary>How a NIC reaches the host.</summary>
public enum NetworkAttachment
{
    /// <summary>A libvirt virtual network (<c>&lt;source network=.../&gt;</c>).</summary>
    Network,

    /// <summary>An existing host bridge (<c>&lt;source bridge=.../&gt;</c>).</summary>
    Bridge,

    /// <summary>A bare tap device with no bridge (<c>type='ethernet'</c>); the host routes it.</summary>
    Ethernet,
}

/// <summary>A virtio NIC.</summary>
public sealed record NetworkInterfaceDefinition
{
    /// <summary>How the NIC is attached.</summary>
    public NetworkAttachment Attachment { get; init; } = NetworkAttachment.Network;

    /// <summary>The network or bridge name (ignored for <see cref="NetworkAttachment.Ethernet"/>).</summary>
    public string Source { get; init; } = "default";

    /// <summary>The MAC address (<c>52:54:00:xx:xx:xx</c>); null lets libvirt choose.</summary>
    public string? MacAddress { get; init; }

    /// <summary>The host-side tap name; null lets libvirt choose (<c>vnetN</c>). Needed to shape with tc.</summary>
    public string? TargetDevice { get; init; }

    /// <summary>Traffic towards the guest.</summary>
    public BandwidthLimit Inbound { get; init; }

    /// <summary>Traffic from the guest.</summary>
    public BandwidthLimit Outbound { get; init; }
}

/// <summary>A host PCI device passed through to the guest (a GPU).</summary>
/// <param name="Domain">PCI domain (usually 0).</param>
/// <param name="Bus">Bus number.</param>
/// <param name="Slot">Slot (device) number, 0..31.</param>
/// <param name="Function">Function number, 0..7.</param>
public readonly record struct PciAddress(int Domain, int Bus, int Slot, int Function)
{
    /// <summary>Parses <c>0000:01:00.0</c> or <c>01:00.0</c>.</summary>
    public static PciAddress Parse(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        var m = Regex.Match(text, "^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\\.([0-7])$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        if (!m.Success)
        {
            throw new FormatException($"PCI address '{text}' is invalid; expected DDDD:BB:SS.F such as 0000:01:00.0.");
        }

        var domain = m.Groups[1].Success ? Convert.ToInt32(m.Groups[1].Value, 16) : 0;
        return new PciAddress(domain, Convert.ToInt32(m.Groups[2].Value, 16), Convert.ToInt32(m.Groups[3].Value, 16), int.Parse(m.Groups[4].Value, System.Globalization.CultureInfo.InvariantCulture));
    }
}

/// <summary>UEFI firmware files for aarch64 guests (Debian's <c>qemu-efi-aarch64</c> paths by default).</summary>
/// <param name="LoaderPath">The read-only code image.</param>
/// <param name="NvramTemplatePath">The variable store copied per domain.</param>
public sealed record UefiFirmware(string LoaderPath = "/usr/share/AAVMF/AAVMF_CODE.fd", string NvramTemplatePath = "/usr/share/AAVMF/AAVMF_VARS.fd");

/// <summary>
/// A VM as DeCloud runs it: one vCPU count and memory size, virtio disks and NICs, a serial console, the qemu
/// guest agent channel, a virtio RNG, ACPI, an optional cloud-init NoCloud seed disk and optional GPUs.
/// Render it with <see cref="DomainXmlWriter"/>; <see cref="Validate"/> names the first bad field.
/// </summary>
public sealed record DomainDefinition
{
    private static readonly Regex NamePattern = new("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
    private static readonly Regex MacPattern = new("^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
    private static readonly Regex DevicePattern = new("^[A-Za-z0-9_.-]{1,15}$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

    /// <summary>The domain name: letters, digits, <c>_ . -</c>, at most 64 characters.</summary>
    public required string Name { get; init; }

    /// <summary>The domain UUID (a new one by default).</summary>
    public Guid Uuid { get; init; } = Guid.NewGuid();

    /// <summary>The guest architecture.</summary>
    public GuestArchitecture Architecture { get; init; } = GuestArchitecture.X86_64;

    /// <summary>KVM in production, qemu (TCG) where KVM is unusable.</summary>
    public HypervisorKind Hypervisor { get; init; } = HypervisorKind.Kvm;

    /// <summary>vCPUs, 1..256.</summary>
    public int VirtualCpus { get; init; } = 1;

    /// <summary>Memory in MiB, 64..4194304.</summary>
    public long MemoryMiB { get; init; } = 1024;

    /// <summary>The quality tier's core share per vCPU (becomes <c>&lt;cputune&gt;</c>).</summary>
    public CpuShare CpuShare { get; init; } = QualityTiers.Dedicated;

    /// <summary>Disks in order (<c>vda</c>, <c>vdb</c>, ...).</summary>
    public IReadOnlyList<DiskDefinition> Disks { get; init; } = [];

    /// <summary>A cloud-init NoCloud seed image (a filesystem labelled <c>cidata</c> holding user-data, meta-data and network-config), attached read-only after the disks.</summary>
    public string? CloudInitSeedPath { get; init; }

    /// <summary>NICs.</summary>
    public IReadOnlyList<NetworkInterfaceDefinition> NetworkInterfaces { get; init; } = [];

    /// <summary>GPUs (host PCI devices) to pass through.</summary>
    public IReadOnlyList<PciAddress> PassthroughDevices { get; init; } = [];

    /// <summary>Direct kernel boot: the kernel image (optional; otherwise the first disk boots).</summary>
    public string? KernelPath { get; init; }

    /// <summary>Direct kernel boot: the initramfs.</summary>
    public string? InitrdPath { get; init; }

    /// <summary>Direct kernel boot: the kernel command line.</summary>
    public string? KernelCommandLine { get; init; }

    /// <summary>aarch64 UEFI firmware.</summary>
    public UefiFirmware Firmware { get; init; } = new();

    /// <summary>Where the serial console is logged on the host (optional; a pty is always provided).</summary>
    public string? SerialLogPath { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public DomainDefinition Validate()
    {
        if (string.IsNullOrEmpty(Name) || !NamePattern.IsMatch(Name))
        {
            throw new ArgumentException($"DomainDefinition.Name '{Name}' is invalid: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit.", nameof(Name));
        }

        if (Uuid == Guid.Empty)
        {
            throw new ArgumentException("DomainDefinition.Uuid is empty; leave it unset to get a new one.", nameof(Uuid));
        }

        if (VirtualCpus is < 1 or > 256)
        {
            throw new ArgumentOutOfRangeException(nameof(VirtualCpus), VirtualCpus, "DomainDefinition.VirtualCpus must be between 1 and 256.");
        }

        if (MemoryMiB is < 64 or > 4L * 1024 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MemoryMiB), MemoryMiB, "DomainDefinition.MemoryMiB must be between 64 and 4194304 (4 TiB).");
        }

        CpuShare.Validate();
        if (Disks.Count + (CloudInitSeedPath is null ? 0 : 1) > 26)
        {
            throw new ArgumentException("DomainDefinition.Disks: at most 26 disks including the seed disk (vda..vdz).", nameof(Disks));
        }

        foreach (var disk in Disks)
        {
            RequireAbsolute(disk.Path, nameof(Disks));
            if (disk.Format is not ("qcow2" or "raw"))
            {
                throw new ArgumentException($"DomainDefinition.Disks: format '{disk.Format}' of '{disk.Path}' is not supported; use qcow2 or raw.", nameof(Disks));
            }
        }

        RequireAbsolute(CloudInitSeedPath, nameof(CloudInitSeedPath));
        RequireAbsolute(KernelPath, nameof(KernelPath));
        RequireAbsolute(InitrdPath, nameof(InitrdPath));
        RequireAbsolute(SerialLogPath, nameof(SerialLogPath));
        if (KernelPath is null && (InitrdPath is not null || KernelCommandLine is not null))
        {
            throw new ArgumentException("DomainDefinition.InitrdPath/KernelCommandLine need DomainDefinition.KernelPath.", nameof(KernelPath));
        }

        foreach (var nic in NetworkInterfaces)
        {
            if (nic.MacAddress is not null && !MacPattern.IsMatch(nic.MacAddress))
            {
                throw new ArgumentException($"DomainDefinition.NetworkInterfaces: MAC address '{nic.MacAddress}' is invalid; use six hex pairs such as 52:54:00:12:34:56.", nameof(NetworkInterfaces));
            }

            if (nic.TargetDevice is not null && !DevicePattern.IsMatch(nic.TargetDevice))
            {
                throw new ArgumentException($"DomainDefinition.NetworkInterfaces: tap name '{nic.TargetDevice}' is invalid; use at most 15 letters, digits, '_', '.' or '-'.", nameof(NetworkInterfaces));
            }

            if (nic.Attachment != NetworkAttachment.Ethernet && !NamePattern.IsMatch(nic.Source))
            {
                throw new ArgumentException($"DomainDefinition.NetworkInterfaces: source '{nic.Source}' is not a valid network or bridge name.", nameof(NetworkInterfaces));
            }

            nic.Inbound.Validate();
            nic.Outbound.Validate();
        }

        foreach (var pci in PassthroughDevices)
        {
            if (pci.Domain is < 0 or > 0xffff || pci.Bus is < 0 or > 0xff || pci.Slot is < 0 or > 0x1f || pci.Function is < 0 or > 7)
            {
                throw new ArgumentOutOfRangeException(nameof(PassthroughDevices), pci, "DomainDefinition.PassthroughDevices: PCI address out of range (domain 0-ffff, bus 0-ff, slot 0-1f, function 0-7).");
            }
        }

        if (Architecture == GuestArchitecture.Aarch64)
        {
            RequireAbsolute(Firmware.LoaderPath, nameof(Firmware));
            RequireAbsolute(Firmware.NvramTemplatePath, nameof(Firmware));
        }

        return this;
    }

    private static void RequireAbsolute(string? path, string field)
    {
        if (path is not null && (!Path.IsPathFullyQualified(path) || path.Contains('\0', StringComparison.Ordinal)))
        {
            throw new ArgumentException($"DomainDefinition.{field}: '{path}' must be an absolute path.", field);
        }
    }
}
