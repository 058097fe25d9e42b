using DeCloud.Core.Model;

namespace DeCloud.Orchestrator.Storage;

/// <summary>A node as the orchestrator knows it.</summary>
internal sealed record NodeRecord(
    NodeId Id,
    WalletAddress Operator,
    string MachineId,
    string Region,
    IReadOnlyList<string> Tags,
    string Architecture,
    bool BehindNat,
    string PublicHost,
    bool RelayCapable,
    string RelayEndpoint,
    Resources Capacity,
    Resources Used,
    bool Online,
    DateTimeOffset RegisteredAt,
    DateTimeOffset LastSeen,
    string? RelayNodeId)
{
    /// <summary>The registry's record behind this view (hardware, pricing, reputation), when read from the registry.</summary>
    public Core.Registry.NodeRecord? Registry { get; init; }
}

/// <summary>What the orchestrator keeps about a node's agent beside the registry: machine id and relay role.</summary>
internal sealed record AgentDetails(string MachineId, bool RelayCapable, string RelayEndpoint);

/// <summary>A VM state change an acknowledgement stored.</summary>
internal readonly record struct VmStateChange(VmId Vm, NodeId Node, string State);

/// <summary>The lifecycle states of a VM as the orchestrator records them.</summary>
internal static class VmStates
{
    public const string Provisioning = "Provisioning";
    public const string Running = "Running";
    public const string Starting = "Starting";
    public const string Stopping = "Stopping";
    public const string Stopped = "Stopped";
    public const string Deleting = "Deleting";
    public const string Deleted = "Deleted";
    public const string Failed = "Failed";

    /// <summary>States whose VM still holds resources on its node.</summary>
    public static bool HoldsResources(string state) => state is not (Deleted or Failed);
}

/// <summary>A VM as the orchestrator records it.</summary>
internal sealed record VmRecord(
    VmId Id,
    WalletAddress Owner,
    string Name,
    NodeId NodeId,
    Resources Resources,
    QualityTier QualityTier,
    BandwidthTier BandwidthTier,
    string State,
    string PowerState,
    string? Error,
    IReadOnlyDictionary<string, bool> Services,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);

/// <summary>A public port mapped to a VM.</summary>
internal sealed record PortRecord(VmId VmId, int PublicPort, int TargetPort, string Protocol, NodeId NodeId, string State)
{
    /// <summary>For a NAT'd node: the port its relay bound, when that differs from <see cref="PublicPort"/>.</summary>
    public int? RelayPort { get; init; }
}
