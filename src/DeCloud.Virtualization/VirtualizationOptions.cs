using DeCloud.Virtualization.DomainXml;
using Microsoft.Extensions.Options;

namespace DeCloud.Virtualization;

/// <summary>Settings for <see cref="VirtualizationServiceCollectionExtensions.AddDeCloudVirtualization"/>.</summary>
public sealed class VirtualizationOptions
{
    /// <summary>The libvirt URI (default <c>qemu:///system</c>; <c>test:///default</c> for tests).</summary>
    public string ConnectionUri { get; set; } = "qemu:///system";

    /// <summary>Force an enforcement; null probes the kernel (<see cref="Qos.KernelShapingSupport"/>) and picks libvirt or the tc shaper.</summary>
    public BandwidthEnforcement? BandwidthEnforcement { get; set; }
}

/// <summary>Validates <see cref="VirtualizationOptions"/> at start, naming the bad property.</summary>
internal sealed class VirtualizationOptionsValidator : IValidateOptions<VirtualizationOptions>
{
    public ValidateOptionsResult Validate(string? name, VirtualizationOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ConnectionUri) || !options.ConnectionUri.Contains("://", StringComparison.Ordinal))
        {
            failures.Add($"VirtualizationOptions.ConnectionUri '{options.ConnectionUri}' is not a libvirt URI such as qemu:///system.");
        }

        if (options.BandwidthEnforcement is { } mode && !Enum.IsDefined(mode))
        {
            failures.Add($"VirtualizationOptions.BandwidthEnforcement '{mode}' is unknown; use Libvirt, TcShaper or leave it unset.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
