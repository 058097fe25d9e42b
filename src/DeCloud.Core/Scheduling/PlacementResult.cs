using System.Text;
using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>The outcome of one placement call. A struct, so a successful placement allocates nothing.</summary>
public readonly struct PlacementResult
{
    internal PlacementResult(NodeId node, ReservationId reservation, PlacementMode mode, double score)
    {
        Node = node;
        Reservation = reservation;
        Mode = mode;
        Score = score;
        Refusal = null;
    }

    internal PlacementResult(PlacementRefusal refusal, PlacementMode mode)
    {
        Node = default;
        Reservation = default;
        Mode = mode;
        Score = 0;
        Refusal = refusal;
    }

    /// <summary>True when a node was chosen (and held or allocated unless <see cref="Mode"/> is <see cref="PlacementMode.DryRun"/>).</summary>
    public bool Succeeded => Refusal is null;

    /// <summary>The chosen node; <c>default</c> when refused.</summary>
    public NodeId Node { get; }

    /// <summary>The hold or allocation; empty for a dry run or a refusal.</summary>
    public ReservationId Reservation { get; }

    /// <summary>What the call did with the chosen node.</summary>
    public PlacementMode Mode { get; }

    /// <summary>The winning node's total score.</summary>
    public double Score { get; }

    /// <summary>Why nothing fits, when refused.</summary>
    public PlacementRefusal? Refusal { get; }

    /// <inheritdoc />
    public override string ToString() => Refusal?.ToString() ?? $"{Mode} on {Node} (score {Score:F4}, reservation {Reservation})";
}

/// <summary>How many nodes one filter rejected: each node counts once, under the first filter (cheapest first) that rejects it.</summary>
/// <param name="Filter">The filter's name, e.g. <c>memory</c>.</param>
/// <param name="Nodes">Nodes rejected first by it.</param>
public readonly record struct FilterRejection(string Filter, int Nodes);

/// <summary>Nodes that fail exactly one filter, and by how much.</summary>
/// <param name="Filter">The only filter they fail.</param>
/// <param name="Nodes">How many nodes would fit with <see cref="Shortfall"/> less (or the stated change).</param>
/// <param name="Shortfall">The smallest shortfall, in the filter's unit (MiB, GiB, twelfths, GPUs, micro-USDC, basis points), or 0.</param>
/// <param name="Message">The sentence for a user, e.g. "3 nodes in eu-west would fit with 2 GiB less memory".</param>
public readonly record struct NearMiss(string Filter, int Nodes, long Shortfall, string Message);

/// <summary>
/// Why a request was refused: per-filter rejection counts that add up to <see cref="InventorySize"/>,
/// the nearest misses with concrete deltas, and a structural reason when no node could ever fit.
/// </summary>
public sealed class PlacementRefusal
{
    internal PlacementRefusal(string summary, int inventorySize, IReadOnlyList<FilterRejection> rejections,
        IReadOnlyList<NearMiss> nearMisses, string? structuralReason, int gangMember = -1)
    {
        Summary = summary;
        InventorySize = inventorySize;
        Rejections = rejections;
        NearMisses = nearMisses;
        StructuralReason = structuralReason;
        GangMember = gangMember;
    }

    /// <summary>One line for a user; never a bare "no node".</summary>
    public string Summary { get; }

    /// <summary>Nodes in the inventory when the request was evaluated.</summary>
    public int InventorySize { get; }

    /// <summary>Rejections per filter, in filter order; their <see cref="FilterRejection.Nodes"/> add up to <see cref="InventorySize"/> minus <see cref="Fitting"/>.</summary>
    public IReadOnlyList<FilterRejection> Rejections { get; }

    /// <summary>Nodes that pass every filter (non-zero only for a gang member that lost to its siblings).</summary>
    public int Fitting => InventorySize - RejectedTotal;

    /// <summary>The sum of <see cref="Rejections"/>.</summary>
    public int RejectedTotal
    {
        get
        {
            var sum = 0;
            foreach (var r in Rejections)
            {
                sum += r.Nodes;
            }

            return sum;
        }
    }

    /// <summary>Nodes failing a single filter, most numerous first.</summary>
    public IReadOnlyList<NearMiss> NearMisses { get; }

    /// <summary>Set when no node could host the VM even if it were empty, e.g. "no online aarch64 node has a GPU".</summary>
    public string? StructuralReason { get; }

    /// <summary>For a gang, the index of the member that could not be placed; otherwise -1.</summary>
    public int GangMember { get; }

    /// <inheritdoc />
    public override string ToString()
    {
        var sb = new StringBuilder(Summary);
        sb.Append(" [");
        for (var i = 0; i < Rejections.Count; i++)
        {
            sb.Append(i == 0 ? string.Empty : ", ").Append(Rejections[i].Filter).Append(": ").Append(Rejections[i].Nodes);
        }

        sb.Append(" of ").Append(InventorySize).Append(" nodes]");
        foreach (var miss in NearMisses)
        {
            sb.Append("; ").Append(miss.Message);
        }

        return sb.ToString();
    }
}

/// <summary>The outcome of a gang placement: every member placed, or none.</summary>
public sealed class GangPlacementResult
{
    internal GangPlacementResult(IReadOnlyList<PlacementResult> placements, PlacementRefusal? refusal)
    {
        Placements = placements;
        Refusal = refusal;
    }

    /// <summary>True when every member was placed.</summary>
    public bool Succeeded => Refusal is null;

    /// <summary>One result per member, in request order; empty when refused.</summary>
    public IReadOnlyList<PlacementResult> Placements { get; }

    /// <summary>Why the gang was refused; <see cref="PlacementRefusal.GangMember"/> names the member that did not fit.</summary>
    public PlacementRefusal? Refusal { get; }
}

/// <summary>A proposed new home for one VM of a node that went offline.</summary>
/// <param name="Vm">The VM.</param>
/// <param name="Current">Its reservation on the offline node (left in place: release it once the VM has moved).</param>
/// <param name="Proposed">The proposal: a node (held, or decided only for a dry run) or a refusal.</param>
public sealed record ReschedulingProposal(VmId Vm, ReservationId Current, PlacementResult Proposed);
