using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>Options of <see cref="VmScheduler"/>; <see cref="Validate"/> names the property that is wrong.</summary>
public sealed class SchedulerOptions
{
    /// <summary>The default ordering of candidates; a request may override it.</summary>
    public PlacementStrategy Strategy { get; set; } = PlacementStrategy.BinPack;

    /// <summary>Weight of the bin-pack (or spread) score, 0-1000. Default 1.</summary>
    public double PackWeight { get; set; } = 1;

    /// <summary>Weight of the price score (cheapest candidate scores 1), 0-1000. Default 0.</summary>
    public double PriceWeight { get; set; }

    /// <summary>Weight of the reputation score (30-day uptime), 0-1000. Default 0.</summary>
    public double ReputationWeight { get; set; }

    /// <summary>
    /// How many feasible candidates, taken in bin-pack or spread order from the free-CPU index, are scored
    /// before the best is chosen (1-4096). Default 8. Feasibility is always exact; this bounds only how far
    /// price and reputation weights can reorder the packing order.
    /// </summary>
    public int CandidatesToScore { get; set; } = 8;

    /// <summary>How long a hold lasts unless the call gives its own duration. Default 30 s.</summary>
    public TimeSpan HoldDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Seeds the tie-break between equally scored nodes: the same inventory, requests and seed give the same placements.</summary>
    public ulong Seed { get; set; }

    /// <summary>The platform's price floor: a node's rates are raised to it, and a request whose cap is below it is rejected.</summary>
    public NodePrice PriceFloor { get; set; }

    /// <summary>The bandwidth tier table used to price the bandwidth part of a VM.</summary>
    public BandwidthTierCatalog BandwidthTiers { get; set; } = BandwidthTierCatalog.Default;

    /// <summary>How many nearest misses a refusal lists (0-64). Default 5.</summary>
    public int NearMissLimit { get; set; } = 5;

    /// <summary>The largest gang accepted (1-100,000). Default 1,024.</summary>
    public int MaxGangSize { get; set; } = 1024;

    /// <summary>Throws <see cref="DeCloudValidationException"/> naming the first invalid property.</summary>
    public void Validate()
    {
        if (Strategy is not (PlacementStrategy.BinPack or PlacementStrategy.Spread))
        {
            throw Model.Validate.Fail(nameof(Strategy), $"'{Strategy}' is not a strategy; expected BinPack or Spread.");
        }

        CheckWeight(PackWeight, nameof(PackWeight));
        CheckWeight(PriceWeight, nameof(PriceWeight));
        CheckWeight(ReputationWeight, nameof(ReputationWeight));
        Model.Validate.Range(CandidatesToScore, 1, 4096, nameof(CandidatesToScore));
        if (HoldDuration <= TimeSpan.Zero || HoldDuration > TimeSpan.FromDays(1))
        {
            throw Model.Validate.Fail(nameof(HoldDuration), $"{HoldDuration} must be positive and at most one day.");
        }

        PriceFloor.Validate(nameof(PriceFloor));
        if (BandwidthTiers is null)
        {
            throw Model.Validate.Fail(nameof(BandwidthTiers), "must be set (use BandwidthTierCatalog.Default).");
        }

        Model.Validate.Range(NearMissLimit, 0, 64, nameof(NearMissLimit));
        Model.Validate.Range(MaxGangSize, 1, 100_000, nameof(MaxGangSize));
    }

    internal SchedulerOptions Clone() => (SchedulerOptions)MemberwiseClone();

    private static void CheckWeight(double w, string name)
    {
        if (!(w >= 0 && w <= 1000))
        {
            throw Model.Validate.Fail(name, $"{w} must be between 0 and 1000.");
        }
    }
}
