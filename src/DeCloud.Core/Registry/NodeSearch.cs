using DeCloud.Core.Model;

namespace DeCloud.Core.Registry;

/// <summary>How node search results are ordered.</summary>
public enum NodeSortOrder
{
    /// <summary>Highest uptime first (then cheapest).</summary>
    Uptime = 0,

    /// <summary>Cheapest compute point first (then highest uptime).</summary>
    Price = 1,

    /// <summary>Most free compute points first (then highest uptime).</summary>
    Capacity = 2,
}

/// <summary>Filters and order of a node search. Every filter is optional.</summary>
public sealed record NodeSearchQuery
{
    /// <summary>Nodes must carry all of these tags.</summary>
    public IReadOnlyCollection<string>? Tags { get; init; }

    /// <summary>Nodes must be in this region.</summary>
    public string? Region { get; init; }

    /// <summary>Nodes must charge at most this per compute point and hour (USDC).</summary>
    public decimal? MaxComputePointHourPrice { get; init; }

    /// <summary>Nodes must have at least this uptime (0..1).</summary>
    public double? MinUptime { get; init; }

    /// <summary>Nodes must have at least this many free compute points.</summary>
    public int? MinFreeComputePoints { get; init; }

    /// <summary>Nodes must have at least one free GPU.</summary>
    public bool GpuRequired { get; init; }

    /// <summary>Only online nodes (default true).</summary>
    public bool OnlineOnly { get; init; } = true;

    /// <summary>Nodes must have this architecture.</summary>
    public CpuArchitecture? Architecture { get; init; }

    /// <summary>The order.</summary>
    public NodeSortOrder Sort { get; init; } = NodeSortOrder.Uptime;

    /// <summary>Results to skip (paging).</summary>
    public int Offset { get; init; }

    /// <summary>Most results returned, 1..1000 (default 100).</summary>
    public int Limit { get; init; } = 100;

    internal NormalizedQuery Normalize()
    {
        var tags = Tags is null ? null : Labels.Tags(Tags, "tags");
        var region = Region is null ? null : Labels.Region(Region, "region");
        if (MaxComputePointHourPrice is < 0)
        {
            throw Validate.Fail("maxComputePointHourPrice", $"{MaxComputePointHourPrice} must not be negative.");
        }

        if (MinUptime is { } u && !(u is >= 0 and <= 1))
        {
            throw Validate.Fail("minUptime", $"{u} must be 0..1.");
        }

        if (MinFreeComputePoints is { } p)
        {
            Validate.Range(p, 0, Resources.MaxComputePoints, "minFreeComputePoints");
        }

        if (!Enum.IsDefined(Sort))
        {
            throw Validate.Fail("sort", $"'{Sort}' is not Uptime, Price or Capacity.");
        }

        if (Architecture is { } a)
        {
            _ = a.ToName();
        }

        Validate.Range(Offset, 0, int.MaxValue, "offset");
        Validate.Range(Limit, 1, 1000, "limit");
        return new NormalizedQuery(this, tags, region);
    }

    internal sealed record NormalizedQuery(NodeSearchQuery Query, IReadOnlySet<string>? Tags, string? Region)
    {
        public bool Matches(NodeRecord n)
        {
            var q = Query;
            if (q.OnlineOnly && !n.IsOnline)
            {
                return false;
            }

            if (Region is not null && !string.Equals(n.Registration.Region, Region, StringComparison.Ordinal))
            {
                return false;
            }

            if (q.Architecture is { } a && n.Registration.Architecture != a)
            {
                return false;
            }

            if (q.MaxComputePointHourPrice is { } max && n.Registration.Pricing.ComputePointHour > max)
            {
                return false;
            }

            if (q.MinUptime is { } u && n.Uptime < u)
            {
                return false;
            }

            var free = n.Free;
            if (q.MinFreeComputePoints is { } p && free.ComputePoints < p)
            {
                return false;
            }

            if (q.GpuRequired && free.Gpus == 0)
            {
                return false;
            }

            if (Tags is not null)
            {
                foreach (var tag in Tags)
                {
                    if (!n.Registration.Tags.Contains(tag))
                    {
                        return false;
                    }
                }
            }

            return true;
        }
    }
}

/// <summary>Orderings used by search and featured nodes.</summary>
internal static class NodeOrder
{
    public static int ByUptime(NodeRecord a, NodeRecord b)
    {
        var c = b.Uptime.CompareTo(a.Uptime);
        if (c == 0)
        {
            c = a.Registration.Pricing.ComputePointHour.CompareTo(b.Registration.Pricing.ComputePointHour);
        }

        return c != 0 ? c : string.CompareOrdinal(a.Id.Value, b.Id.Value);
    }

    public static int ByPrice(NodeRecord a, NodeRecord b)
    {
        var c = a.Registration.Pricing.ComputePointHour.CompareTo(b.Registration.Pricing.ComputePointHour);
        if (c == 0)
        {
            c = b.Uptime.CompareTo(a.Uptime);
        }

        return c != 0 ? c : string.CompareOrdinal(a.Id.Value, b.Id.Value);
    }

    public static int ByCapacity(NodeRecord a, NodeRecord b)
    {
        var c = b.Free.ComputePoints.CompareTo(a.Free.ComputePoints);
        if (c == 0)
        {
            c = b.Uptime.CompareTo(a.Uptime);
        }

        return c != 0 ? c : string.CompareOrdinal(a.Id.Value, b.Id.Value);
    }

    public static Comparison<NodeRecord> For(NodeSortOrder order) => order switch
    {
        NodeSortOrder.Price => ByPrice,
        NodeSortOrder.Capacity => ByCapacity,
        _ => ByUptime,
    };
}
