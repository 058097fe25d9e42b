using System.Globalization;
using DeCloud.Billing.Metering;
using DeCloud.Billing.Pricing;
using DeCloud.Core.Model;
using DeCloud.Orchestrator.Storage;

namespace DeCloud.Orchestrator.Billing;

/// <summary>A featured node, its place in the ranking and why.</summary>
/// <param name="Node">The node.</param>
/// <param name="Score">The blended score, 0..1 (higher is better value).</param>
/// <param name="Uptime">Its measured 30-day uptime (0..1), or null when no uptime source knows it.</param>
/// <param name="ReferenceHourlyUsdc">What the reference VM costs per hour on it.</param>
/// <param name="PriceScore">The floor price of the reference VM divided by its price on the node (1 = at the floor).</param>
/// <param name="Reason">The score explained in words.</param>
internal sealed record FeaturedNode(NodeRecord Node, decimal Score, decimal? Uptime, decimal ReferenceHourlyUsdc, decimal PriceScore, string Reason);

/// <summary>
/// Ranks online nodes by value: <c>score = 0.6 x uptime + 0.4 x (floor price / node price)</c>, where the price
/// is the hourly cost of a reference VM (<see cref="ReferenceVm"/>, Standard quality and bandwidth) at the node's
/// floor-enforced prices, and uptime is the node's measured 30-day uptime from an <see cref="INodeUptimeSource"/>
/// (the orchestrator's <see cref="StoreUptimeSource"/>); a node whose uptime is unknown counts as 0.5. Ties go to
/// the cheaper node, then the node id. Best value first.
/// </summary>
internal sealed class FeaturedNodes(OrchestratorStore store, NodePriceBook priceBook, PriceCalculator calculator, TimeProvider time, INodeUptimeSource? uptime = null)
{
    /// <summary>Weight of uptime in the score.</summary>
    public const decimal UptimeWeight = 0.6m;

    /// <summary>Weight of price in the score.</summary>
    public const decimal PriceWeight = 0.4m;

    /// <summary>The uptime assumed when none is known.</summary>
    public const decimal UnknownUptime = 0.5m;

    /// <summary>The most nodes one answer lists.</summary>
    public const int MaxLimit = 50;

    /// <summary>The VM priced to compare nodes: 1 compute point, 1 GiB memory, 10 GiB storage.</summary>
    public static readonly Resources ReferenceVm = new(1, 1024, 10);

    private static readonly TimeSpan Window = TimeSpan.FromDays(30);

    /// <summary>The best <paramref name="limit"/> online nodes, best value first.</summary>
    public IReadOnlyList<FeaturedNode> Rank(int limit)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxLimit);
        var now = time.GetUtcNow();
        var floor = calculator.Estimate(ReferenceVm, QualityTier.Standard, BandwidthTier.Standard, calculator.Options.Floors).HourlyUsdc;
        var ranked = new List<FeaturedNode>();
        foreach (var node in store.ListNodes())
        {
            if (!node.Online)
            {
                continue;
            }

            var hourly = calculator.Estimate(ReferenceVm, QualityTier.Standard, BandwidthTier.Standard, priceBook.GetPrices(node.Id)).HourlyUsdc;
            var priceScore = hourly <= 0 ? 1m : Math.Min(1m, floor / hourly);
            var measured = uptime?.GetUptime(node.Id, now - Window, now) is { } u ? Math.Clamp(u, 0m, 1m) : (decimal?)null;
            var score = Math.Round((UptimeWeight * (measured ?? UnknownUptime)) + (PriceWeight * priceScore), 4);
            var reason = string.Create(CultureInfo.InvariantCulture,
                $"{(measured is { } m ? $"uptime {m * 100:0.0}% over 30 days" : "uptime not measured yet (counted as 50%)")}; reference VM {hourly:0.######} USDC/h ({(floor > 0 ? hourly / floor : 1m):0.00}x the floor); score = 0.6 x uptime + 0.4 x price = {score:0.####}");
            ranked.Add(new FeaturedNode(node, score, measured, hourly, Math.Round(priceScore, 4), reason));
        }

        ranked.Sort(static (a, b) =>
        {
            var c = b.Score.CompareTo(a.Score);
            c = c != 0 ? c : a.ReferenceHourlyUsdc.CompareTo(b.ReferenceHourlyUsdc);
            return c != 0 ? c : string.CompareOrdinal(a.Node.Id.Value, b.Node.Id.Value);
        });
        return ranked.Count > limit ? ranked[..limit] : ranked;
    }
}
