using System.Globalization;
using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;

namespace DeCloud.Core.Registry;

/// <summary>How clients reach a node's VMs.</summary>
public enum NodeConnectivity
{
    /// <summary>The node has a public address; ports are forwarded with DNAT.</summary>
    Public = 0,

    /// <summary>The node is behind NAT/CGNAT and is reached through a relay.</summary>
    BehindNat = 1,
}

/// <summary>A node's hardware inventory as its agent measured it.</summary>
/// <param name="CpuCores">Logical CPUs.</param>
/// <param name="CpuModel">CPU model name.</param>
/// <param name="BenchmarkScore">CPU benchmark score over all cores (see <see cref="ComputePointNormalizer"/>).</param>
/// <param name="MemoryMiB">Memory offered to VMs, MiB.</param>
/// <param name="StorageGiB">Storage offered to VMs, GiB.</param>
/// <param name="Gpus">GPU models, one entry per GPU (e.g. <c>nvidia-a100</c>).</param>
public sealed record NodeHardware(int CpuCores, string CpuModel, double BenchmarkScore, long MemoryMiB, long StorageGiB, IReadOnlyList<string>? Gpus = null)
{
    /// <summary>Checks every field; throws <see cref="DeCloudValidationException"/> naming the first bad one.</summary>
    public void Validate()
    {
        Model.Validate.Range(CpuCores, 1, 4096, "hardware.cpuCores");
        Text.Check(CpuModel, 1, 128, "hardware.cpuModel");
        if (!(BenchmarkScore >= 0) || double.IsInfinity(BenchmarkScore))
        {
            throw Model.Validate.Fail("hardware.benchmarkScore", $"{BenchmarkScore} must be a non-negative finite number.");
        }

        Model.Validate.Range(MemoryMiB, 1, Resources.MaxMemoryMiB, "hardware.memoryMiB");
        Model.Validate.Range(StorageGiB, 0, Resources.MaxStorageGiB, "hardware.storageGiB");
        var gpus = Gpus ?? [];
        Model.Validate.Range(gpus.Count, 0, Resources.MaxGpus, "hardware.gpus");
        for (var i = 0; i < gpus.Count; i++)
        {
            if (gpus[i] is null)
            {
                throw Model.Validate.Fail($"hardware.gpus[{i}]", "must be a GPU model name.");
            }

            new Resources(0, 0, 0, 1, gpus[i]).ValidateCapacity($"hardware.gpus[{i}]");
        }
    }
}

/// <summary>An operator's prices in USDC per hour.</summary>
/// <param name="ComputePointHour">Per compute point and hour.</param>
/// <param name="MemoryGiBHour">Per GiB of memory and hour.</param>
/// <param name="StorageGiBHour">Per GiB of storage and hour.</param>
/// <param name="GpuHour">Per GPU and hour.</param>
public sealed record NodePricing(decimal ComputePointHour, decimal MemoryGiBHour, decimal StorageGiBHour, decimal GpuHour = 0)
{
    /// <summary>Upper bound of any rate (USDC per unit and hour).</summary>
    public const decimal MaxRate = 1000m;

    /// <summary>Checks every rate is within 0..<see cref="MaxRate"/>.</summary>
    public void Validate()
    {
        Rate(ComputePointHour, "pricing.computePointHour");
        Rate(MemoryGiBHour, "pricing.memoryGiBHour");
        Rate(StorageGiBHour, "pricing.storageGiBHour");
        Rate(GpuHour, "pricing.gpuHour");
    }

    private static void Rate(decimal value, string field)
    {
        if (value < 0 || value > MaxRate)
        {
            throw Model.Validate.Fail(field, $"{value.ToString(CultureInfo.InvariantCulture)} is out of range; expected 0..{MaxRate} USDC per hour.");
        }
    }
}

/// <summary>What an agent sends when it registers (or re-registers: the same <see cref="NodeId"/> updates the node).</summary>
/// <param name="NodeId">The node's deterministic id (<see cref="NodeId.FromMachine"/>).</param>
/// <param name="OperatorWallet">The wallet that operates the node and gets paid.</param>
/// <param name="Hardware">The hardware inventory.</param>
/// <param name="Architecture">CPU architecture.</param>
/// <param name="Region">Region label, e.g. <c>eu-west</c>.</param>
/// <param name="Tags">Tags, e.g. <c>ssd</c>, <c>gpu</c>.</param>
/// <param name="Description">Free text shown to users (at most 1,000 characters).</param>
/// <param name="Pricing">The operator's prices.</param>
/// <param name="Connectivity">Public or behind NAT.</param>
/// <param name="PublicEndpoint"><c>host:port</c> of a public node; null behind NAT.</param>
/// <param name="AgentVersion">The agent's version, e.g. <c>1.4.2</c>.</param>
public sealed record NodeRegistration(
    NodeId NodeId,
    WalletAddress OperatorWallet,
    NodeHardware Hardware,
    CpuArchitecture Architecture,
    string Region,
    IReadOnlyCollection<string> Tags,
    string? Description,
    NodePricing Pricing,
    NodeConnectivity Connectivity,
    string? PublicEndpoint,
    string AgentVersion)
{
    /// <summary>
    /// Checks every field and returns the registration with its region and tags normalized; throws
    /// <see cref="DeCloudValidationException"/> naming the first bad field.
    /// </summary>
    public NodeRegistration Normalize()
    {
        if (NodeId.IsEmpty)
        {
            throw Model.Validate.Fail("nodeId", "must not be empty.");
        }

        if (OperatorWallet.IsEmpty)
        {
            throw Model.Validate.Fail("operatorWallet", "must be a wallet address.");
        }

        if (Hardware is null)
        {
            throw Model.Validate.Fail("hardware", "is required.");
        }

        Hardware.Validate();
        _ = Architecture.ToName();
        var region = Labels.Region(Region);
        var tags = Labels.Tags(Tags);
        if (Description is not null)
        {
            Text.Check(Description, 0, 1000, "description");
        }

        if (Pricing is null)
        {
            throw Model.Validate.Fail("pricing", "is required.");
        }

        Pricing.Validate();
        switch (Connectivity)
        {
            case NodeConnectivity.Public:
                CheckEndpoint(PublicEndpoint);
                break;
            case NodeConnectivity.BehindNat:
                if (PublicEndpoint is not null)
                {
                    throw Model.Validate.Fail("publicEndpoint", "must be empty for a node behind NAT (it is reached through a relay).");
                }

                break;
            default:
                throw Model.Validate.Fail("connectivity", $"'{Connectivity}' is not Public or BehindNat.");
        }

        if (string.IsNullOrEmpty(AgentVersion) || AgentVersion.Length > 64 ||
            !AgentVersion.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '+'))
        {
            throw Model.Validate.Fail("agentVersion", $"'{AgentVersion}' is not a version (1-64 of letters, digits, '.', '-', '+').");
        }

        return this with { Region = region, Tags = tags.ToArray() };
    }

    private static void CheckEndpoint(string? endpoint)
    {
        var colon = endpoint?.LastIndexOf(':') ?? -1;
        if (endpoint is null || colon <= 0 || endpoint.Length > 261 ||
            !int.TryParse(endpoint.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw Model.Validate.Fail("publicEndpoint", $"'{endpoint}' is not host:port with a port 1-65535 (a public node needs one).");
        }

        var host = endpoint.AsSpan(0, colon);
        if (host.StartsWith("[") && host.EndsWith("]"))
        {
            host = host[1..^1];
        }

        foreach (var c in host)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or ':'))
            {
                throw Model.Validate.Fail("publicEndpoint", $"'{endpoint}' has an invalid host character '{c}'.");
            }
        }
    }
}

/// <summary>One VM's state as its node reports it in a heartbeat.</summary>
/// <param name="VmId">The VM.</param>
/// <param name="State">What the node observes (e.g. Running, Stopped).</param>
public readonly record struct VmStatusReport(VmId VmId, VmState State);

/// <summary>A heartbeat: the node's resource use and the states of its VMs.</summary>
/// <param name="NodeId">The node.</param>
/// <param name="Used">Resources in use on the node.</param>
/// <param name="Vms">Per-VM states (at most 10,000).</param>
public sealed record NodeHeartbeat(NodeId NodeId, Resources Used, IReadOnlyList<VmStatusReport>? Vms = null)
{
    /// <summary>Most VMs one heartbeat may report.</summary>
    public const int MaxVms = 10_000;

    /// <summary>Checks every field; throws <see cref="DeCloudValidationException"/> naming the first bad one.</summary>
    public void Validate()
    {
        if (NodeId.IsEmpty)
        {
            throw Model.Validate.Fail("nodeId", "must not be empty.");
        }

        Used.ValidateCapacity("used");
        var vms = Vms ?? [];
        if (vms.Count > MaxVms)
        {
            throw Model.Validate.Fail("vms", $"{vms.Count} VMs reported; at most {MaxVms} are allowed.");
        }

        HashSet<VmId>? seen = vms.Count > 1 ? new HashSet<VmId>(vms.Count) : null;
        for (var i = 0; i < vms.Count; i++)
        {
            if (vms[i].VmId.Value == Guid.Empty)
            {
                throw Model.Validate.Fail($"vms[{i}].vmId", "must not be empty.");
            }

            if (!VmTransitionTable.IsDefined(vms[i].State))
            {
                throw Model.Validate.Fail($"vms[{i}].state", $"'{vms[i].State}' is not a VM state.");
            }

            if (seen is not null && !seen.Add(vms[i].VmId))
            {
                throw Model.Validate.Fail($"vms[{i}].vmId", $"VM {vms[i].VmId} is reported twice.");
            }
        }
    }
}

internal static class Text
{
    public static void Check(string? value, int min, int max, string field)
    {
        if (value is null || value.Length < min || value.Length > max)
        {
            throw Validate.Fail(field, $"must be {min}-{max} characters (got {value?.Length.ToString(CultureInfo.InvariantCulture) ?? "null"}).");
        }

        foreach (var c in value)
        {
            if (char.IsControl(c) && c is not '\n')
            {
                throw Validate.Fail(field, $"contains a control character (U+{(int)c:X4}).");
            }
        }
    }
}
