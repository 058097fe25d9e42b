using System.Globalization;

namespace DeCloud.Agent;

/// <summary>
/// The operator's hourly prices in USDC (configuration section <c>Agent:Pricing</c>), sent with every registration.
/// Unset (all null, the default): the orchestrator's default prices apply. A rate left null while others are set is 0;
/// the orchestrator raises every rate to its platform floor.
/// </summary>
public sealed class AgentPricingOptions
{
    /// <summary>The largest rate accepted: 1,000 USDC per unit and hour.</summary>
    public const decimal MaxRate = 1000m;

    /// <summary>USDC per compute point and hour.</summary>
    public decimal? ComputePointHour { get; set; }

    /// <summary>USDC per GiB of memory and hour.</summary>
    public decimal? MemoryGiBHour { get; set; }

    /// <summary>USDC per GiB of storage and hour.</summary>
    public decimal? StorageGiBHour { get; set; }

    /// <summary>USDC per GPU and hour.</summary>
    public decimal? GpuHour { get; set; }

    /// <summary>True when at least one rate is set.</summary>
    public bool IsSet => ComputePointHour is not null || MemoryGiBHour is not null || StorageGiBHour is not null || GpuHour is not null;

    internal void Validate(List<string> errors)
    {
        foreach (var (name, value) in new[]
                 {
                     (nameof(ComputePointHour), ComputePointHour), (nameof(MemoryGiBHour), MemoryGiBHour),
                     (nameof(StorageGiBHour), StorageGiBHour), (nameof(GpuHour), GpuHour),
                 })
        {
            if (value is < 0 or > MaxRate)
            {
                errors.Add($"Pricing:{name} {value.Value.ToString(CultureInfo.InvariantCulture)} must be 0-{MaxRate} USDC per hour.");
            }
        }
    }

    internal static string Text(decimal? rate) => (rate ?? 0m).ToString(CultureInfo.InvariantCulture);
}
