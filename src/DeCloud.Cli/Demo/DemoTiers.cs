using System.Globalization;
using System.Xml.Linq;
using DeCloud.Virtualization.Libvirt;

namespace DeCloud.Cli.Demo;

/// <summary>What the demo prints about a VM's tiers: read back from the libvirt test-driver domain the in-process agent defined.</summary>
internal static class DemoTiers
{
    /// <summary>A line such as <c>cputune quota 25000/100000 µs per vCPU, NIC dc1234 6250 kB/s (peak 12500, burst 1024 KiB)</c>, or null without libvirt.</summary>
    public static async Task<string?> DescribeAsync(string vmId, CancellationToken cancellationToken)
    {
        if (DemoRunner.DefaultHypervisor != "libvirt" || !Guid.TryParse(vmId, out var uuid))
        {
            return null;
        }

        var conn = await LibvirtConnection.OpenAsync("test:///default", cancellationToken: cancellationToken).ConfigureAwait(false);
        await using var connScope = conn.ConfigureAwait(false);
        using var domain = await conn.LookupByUuidAsync(uuid, cancellationToken).ConfigureAwait(false);
        var xml = XDocument.Parse(await domain.GetXmlAsync(cancellationToken: cancellationToken).ConfigureAwait(false));
        var cputune = xml.Root?.Element("cputune");
        var nic = xml.Descendants("interface").FirstOrDefault();
        var inbound = nic?.Element("bandwidth")?.Element("inbound");
        var quota = cputune?.Element("quota")?.Value ?? "none";
        var period = cputune?.Element("period")?.Value ?? "?";
        var rate = inbound is null
            ? "unmetered"
            : string.Create(CultureInfo.InvariantCulture, $"{inbound.Attribute("average")?.Value} kB/s (peak {inbound.Attribute("peak")?.Value}, burst {inbound.Attribute("burst")?.Value} KiB)");
        return $"cputune quota {quota}/{period} µs per vCPU, NIC {nic?.Element("target")?.Attribute("dev")?.Value} {rate}";
    }
}
