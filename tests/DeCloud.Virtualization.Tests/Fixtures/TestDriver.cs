using System.Globalization;
using DeCloud.Testing;

namespace DeCloud.Virtualization.Tests.Fixtures;

/// <summary>libvirt's in-process test driver: needs only libvirt0. All test:///default connections in a process share state, so names are unique.</summary>
internal static class TestDriver
{
    public const string Uri = "test:///default";

    public static void Require() =>
        RealDependency.Require(File.Exists("/usr/lib/x86_64-linux-gnu/libvirt.so.0") || File.Exists("/usr/lib64/libvirt.so.0"), "libvirt0 (libvirt.so.0)");

    public static string UniqueName(string what) =>
        string.Create(CultureInfo.InvariantCulture, $"dcv-{what}-{Guid.NewGuid():N}");

    public static string DomainXml(string name, string tap = "dcvt0", int memoryMiB = 64) => $"""
        <domain type='test'>
          <name>{name}</name>
          <memory unit='MiB'>{memoryMiB}</memory>
          <vcpu>1</vcpu>
          <os><type>hvm</type></os>
          <devices>
            <interface type='network'>
              <source network='default'/>
              <target dev='{tap}'/>
            </interface>
          </devices>
        </domain>
        """;
}
