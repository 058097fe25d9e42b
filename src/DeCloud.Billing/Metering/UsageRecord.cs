using DeCloud.Core.Model;

namespace DeCloud.Billing.Metering;

/// <summary>
/// A usage report from an agent. Counters are cumulative since the VM was placed on the node, so a
/// lost record is covered by the next one and a repeated record changes nothing. The id is
/// deterministic: the same (VM, node, sequence) always gives the same id.
/// </summary>
/// <param name="Vm">The VM.</param>
/// <param name="Node">The node that ran it.</param>
/// <param name="Sequence">The agent's sequence number for this VM on this node (0, 1, 2, ...).</param>
/// <param name="ObservedAt">When the agent read the counters.</param>
/// <param name="RunningSeconds">Cumulative seconds the VM has run on the node.</param>
/// <param name="RelayedBytes">Cumulative bytes that went through a relay.</param>
/// <param name="TotalBytes">Cumulative bytes in and out.</param>
public readonly record struct UsageRecord(VmId Vm, NodeId Node, long Sequence, DateTimeOffset ObservedAt, long RunningSeconds, long RelayedBytes, long TotalBytes)
{
    /// <summary>The largest counter value accepted (a century of seconds, an exabyte).</summary>
    public const long MaxCounter = 1L << 60;

    /// <summary>The deterministic record id: <c>&lt;vm&gt;/&lt;first 16 of node&gt;/&lt;sequence&gt;</c>.</summary>
    public string Id => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Vm}/{Node.Value.AsSpan(0, 16)}/{Sequence}");

    internal string? Problem()
    {
        if (Vm.Value == Guid.Empty)
        {
            return "vm: missing VM id";
        }

        if (Node.IsEmpty)
        {
            return "node: missing node id";
        }

        if (Sequence < 0 || RunningSeconds < 0 || RelayedBytes < 0 || TotalBytes < 0)
        {
            return $"counters: sequence {Sequence}, runningSeconds {RunningSeconds}, relayedBytes {RelayedBytes}, totalBytes {TotalBytes} must not be negative";
        }

        if (Sequence > MaxCounter || RunningSeconds > MaxCounter || RelayedBytes > MaxCounter || TotalBytes > MaxCounter)
        {
            return $"counters: a value exceeds {MaxCounter}";
        }

        return RelayedBytes > TotalBytes ? $"counters: relayedBytes {RelayedBytes} exceeds totalBytes {TotalBytes}" : null;
    }
}

/// <summary>What one ingest call did with its records.</summary>
/// <param name="Accepted">New records stored.</param>
/// <param name="Duplicates">Records already stored with the same content: ignored.</param>
/// <param name="Conflicts">Records whose id was stored with other counters: ignored, the first stands.</param>
/// <param name="Rejected">Malformed records, records of unknown or closed VMs, or of another node: ignored.</param>
/// <param name="Problems">Why records were rejected or conflicted (at most 20 messages).</param>
public sealed record IngestResult(int Accepted, int Duplicates, int Conflicts, int Rejected, IReadOnlyList<string> Problems);

/// <summary>What one accrual pass posted.</summary>
/// <param name="Postings">Hourly (and closing) charges posted.</param>
/// <param name="ChargedMicroUsdc">Their total in micro-USDC.</param>
public sealed record AccrualResult(int Postings, long ChargedMicroUsdc);

/// <summary>A VM's billing lease: who pays, who earns, and the rate fixed at placement.</summary>
/// <param name="Vm">The VM.</param>
/// <param name="User">The paying user.</param>
/// <param name="Node">The node, once placed.</param>
/// <param name="Operator">The node operator's wallet, once placed.</param>
/// <param name="RelayOperator">The relay operator's wallet when the VM's traffic is relayed.</param>
/// <param name="HourlyRateUsdc">The hourly rate: platform defaults before placement, the node's prices after; fixed once placed.</param>
/// <param name="BilledSeconds">Running seconds already charged.</param>
/// <param name="ChargedMicroUsdc">Total charged so far.</param>
/// <param name="IsClosed">True after the VM was stopped for good and its last partial hour charged.</param>
public sealed record BillingLease(VmId Vm, WalletAddress User, NodeId? Node, WalletAddress? Operator, WalletAddress? RelayOperator,
    decimal HourlyRateUsdc, long BilledSeconds, long ChargedMicroUsdc, bool IsClosed);

/// <summary>A VM whose user ran out of balance, for the host to stop or suspend.</summary>
public sealed class VmsOverdrawnEventArgs : EventArgs
{
    internal VmsOverdrawnEventArgs(WalletAddress user, long balance, IReadOnlyList<VmId> vms)
    {
        User = user;
        BalanceMicroUsdc = balance;
        Vms = vms;
    }

    /// <summary>The user.</summary>
    public WalletAddress User { get; }

    /// <summary>The balance after the charge, zero or negative.</summary>
    public long BalanceMicroUsdc { get; }

    /// <summary>The user's open leases.</summary>
    public IReadOnlyList<VmId> Vms { get; }
}

/// <summary>
/// Where a host tells Billing a node's measured uptime (Core's reputation keeps it); used for SLA credits.
/// </summary>
public interface INodeUptimeSource
{
    /// <summary>The fraction (0..1) of <paramref name="from"/>..<paramref name="to"/> the node was up, or null when unknown.</summary>
    decimal? GetUptime(NodeId node, DateTimeOffset from, DateTimeOffset to);
}
