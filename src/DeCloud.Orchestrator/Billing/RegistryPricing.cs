using DeCloud.Billing;
using DeCloud.Billing.Pricing;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;

namespace DeCloud.Orchestrator.Billing;

/// <summary>The prices a node registers with: the one place registry prices and Billing's price book meet.</summary>
internal interface INodePricingSource
{
    /// <summary>
    /// The floor-enforced prices of <paramref name="node"/> for its registry entry: <paramref name="offered"/> (what the
    /// agent's operator configured) stored in the price book first, else what the book holds (operator prices set
    /// through the API, or the defaults); or an error naming the rate Billing refuses (then nothing is stored).
    /// </summary>
    (NodePricing? Pricing, string? Error) Resolve(NodeId node, NodePricing? offered);

    /// <summary>The book's prices of <paramref name="node"/> as registry pricing.</summary>
    NodePricing Current(NodeId node);
}

/// <summary><see cref="INodePricingSource"/> over Billing's <see cref="NodePriceBook"/>.</summary>
internal sealed class RegistryPricing(NodePriceBook book) : INodePricingSource
{
    public (NodePricing? Pricing, string? Error) Resolve(NodeId node, NodePricing? offered)
    {
        if (offered is null)
        {
            return (Current(node), null);
        }

        try
        {
            return (ToPricing(book.SetOperatorPrices(node, new ResourceRates(offered.ComputePointHour, offered.MemoryGiBHour, offered.StorageGiBHour, offered.GpuHour))), null);
        }
        catch (BillingValidationException ex)
        {
            return (null, "pricing: " + ex.Message);
        }
    }

    public NodePricing Current(NodeId node) => ToPricing(book.GetPrices(node));

    private static NodePricing ToPricing(ResourceRates r) => new(r.CpuPerPointHour, r.MemoryPerGiBHour, r.StoragePerGiBHour, r.GpuPerHour);
}
