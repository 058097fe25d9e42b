using DeCloud.Orchestrator.Storage;

namespace DeCloud.Orchestrator.Api;

/// <summary>POST /api/v1/auth/nonce body.</summary>
internal sealed record NonceRequest(string? Address);

/// <summary>POST /api/v1/auth/nonce answer: the EIP-4361 message to sign.</summary>
internal sealed record NonceResponse(string Nonce, string Message, DateTimeOffset ExpiresAt);

/// <summary>POST /api/v1/auth/verify body.</summary>
internal sealed record VerifyRequest(string? Message, string? Signature);

/// <summary>A sign-in session.</summary>
internal sealed record SessionResponse(string? Token, string Address, DateTimeOffset? ExpiresAt);

/// <summary>POST /api/v1/vms body.</summary>
internal sealed record CreateVmRequest(
    string? Name,
    int ComputePoints,
    long MemoryMiB,
    long StorageGiB,
    int Gpus = 0,
    string? QualityTier = null,
    string? BandwidthTier = null,
    string? NodeId = null,
    string? Image = null);

/// <summary>A VM as the API shows it.</summary>
internal sealed record VmView(
    string Id,
    string Name,
    string NodeId,
    string State,
    string PowerState,
    string? Error,
    int ComputePoints,
    long MemoryMiB,
    long StorageGiB,
    string QualityTier,
    string BandwidthTier,
    IReadOnlyDictionary<string, bool> Services,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt)
{
    public static VmView From(VmRecord v) => new(v.Id.ToString(), v.Name, v.NodeId.Value, v.State, v.PowerState, v.Error,
        v.Resources.ComputePoints, v.Resources.MemoryMiB, v.Resources.StorageGiB, v.QualityTier.ToString(), v.BandwidthTier.ToString(),
        v.Services, v.CreatedAt, v.UpdatedAt);
}

/// <summary>A node as the API shows it.</summary>
internal sealed record NodeView(
    string Id,
    string Operator,
    string Region,
    IReadOnlyList<string> Tags,
    string Architecture,
    bool BehindNat,
    bool RelayCapable,
    string? RelayNodeId,
    bool Online,
    int ComputePoints,
    long MemoryMiB,
    long StorageGiB,
    int Gpus,
    int UsedComputePoints,
    long UsedMemoryMiB,
    DateTimeOffset LastSeen,
    int? CpuCores = null,
    string? CpuModel = null,
    double? BenchmarkScore = null,
    string? PublicEndpoint = null,
    double? Uptime = null,
    long? VmsHosted = null,
    long? VmsCompletedCleanly = null)
{
    /// <summary>The view of a node, with hardware and reputation from the registry when the record carries them.</summary>
    public static NodeView From(NodeRecord n)
    {
        var r = n.Registry;
        var hw = r?.Registration.Hardware;
        return new(n.Id.Value, n.Operator.ToString(), n.Region, n.Tags, n.Architecture, n.BehindNat,
            n.RelayCapable, n.RelayNodeId, n.Online, n.Capacity.ComputePoints, n.Capacity.MemoryMiB, n.Capacity.StorageGiB, n.Capacity.Gpus,
            n.Used.ComputePoints, n.Used.MemoryMiB, n.LastSeen, hw?.CpuCores, hw?.CpuModel, hw?.BenchmarkScore, r?.Registration.PublicEndpoint,
            r is null ? null : Math.Round(r.Uptime, 4), r?.VmsHosted, r?.VmsCompletedCleanly);
    }
}

/// <summary>POST /api/v1/vms/{id}/ports body.</summary>
internal sealed record OpenPortRequest(int TargetPort, string? Protocol = null);

/// <summary>A public port as the API shows it.</summary>
internal sealed record PortView(string VmId, string Host, int PublicPort, int TargetPort, string Protocol, string NodeId, string? ViaRelayNodeId, string State)
{
    /// <summary>Clients connect to <c>Host:PublicPort</c>: the node itself, or the relay of a NAT'd node.</summary>
    public static PortView From(PortRecord p, OrchestratorStore store)
    {
        var node = store.GetNode(p.NodeId);
        var relay = node is { BehindNat: true, RelayNodeId: { } r } && Core.Model.NodeId.TryParse(r, null, out var rid) ? store.GetNode(rid) : null;
        var host = relay?.PublicHost ?? node?.PublicHost ?? string.Empty;
        var port = relay is not null && p.RelayPort is { } bound ? bound : p.PublicPort;
        return new(p.VmId.ToString(), host, port, p.TargetPort, p.Protocol, p.NodeId.Value, relay?.Id.Value, p.State);
    }
}

/// <summary>How many nodes one scheduler filter rejected (in a 409 placement refusal).</summary>
internal sealed record RejectionView(string Filter, int Nodes);

/// <summary>Nodes that failed exactly one filter, and by how much (in a 409 placement refusal).</summary>
internal sealed record NearMissView(string Filter, int Nodes, long Shortfall, string Message);
