using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>
/// A request compiled against the inventory's label tables: one mask and compare for online, architecture,
/// region, public IP and GPU model, integer thresholds for the rest. Reused by its scheduler under the lock,
/// so compiling allocates nothing.
/// </summary>
internal sealed class PlacementQuery
{
    public PlacementRequest Request = null!;
    public ulong AttrMask;
    public ulong AttrValue;
    public int MinBandwidth;
    public int MinUptime;
    public long Cpu;
    public long Mem;
    public long Sto;
    public int Gpu;
    public int TwelfthsPerPoint;
    public int RegionId;
    public int GpuModelId;
    public readonly int[] TagIds = new int[64];
    public int TagCount;
    public bool HasCap;
    public long ResourceCap;
    public NodePrice Floor;
    public int TargetSlot = -1;
    public int ExcludeEpoch;
    public PlacementStrategy Strategy;

    public ResourceAmounts Amounts => new(Cpu, Mem, Sto, Gpu);
}

/// <summary>Validation of a request before anything is touched; allocates nothing when the request is valid.</summary>
internal static class RequestValidator
{
    public const long MaxPriceCap = long.MaxValue / 4;

    /// <summary>Validates <paramref name="r"/> and returns the cap on the node's resource price (before bandwidth), or -1 for none.</summary>
    public static long Validate(PlacementRequest r, SchedulerOptions options, string prefix)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (r.VmId.Value == Guid.Empty)
        {
            throw Model.Validate.Fail(prefix + "vmId", "must be a VM id (a non-empty GUID).");
        }

        var res = r.Resources;
        Model.Validate.Range(res.ComputePoints, 1, Resources.MaxComputePoints, prefix + "resources.computePoints");
        Model.Validate.Range(res.MemoryMiB, 1, Resources.MaxMemoryMiB, prefix + "resources.memoryMiB");
        Model.Validate.Range(res.StorageGiB, 1, Resources.MaxStorageGiB, prefix + "resources.storageGiB");
        Model.Validate.Range(res.Gpus, 0, Resources.MaxGpus, prefix + "resources.gpus");
        if (res.GpuModel is not null && res.Gpus == 0)
        {
            throw Model.Validate.Fail(prefix + "resources.gpuModel", $"'{res.GpuModel}' is given without GPUs; set resources.gpus to at least 1 or drop the model.");
        }

        if (!QualityTiers.IsDefined(r.QualityTier))
        {
            throw Model.Validate.Fail(prefix + "qualityTier", $"'{r.QualityTier}' is not a quality tier; expected Dedicated, Standard, Balanced or Burstable.");
        }

        if (!BandwidthTierCatalog.IsDefined(r.BandwidthTier))
        {
            throw Model.Validate.Fail(prefix + "bandwidthTier", $"'{r.BandwidthTier}' is not a bandwidth tier; expected Basic, Standard, Performance or Unmetered.");
        }

        if (r.Architecture is { } arch && arch is not (CpuArchitecture.X86_64 or CpuArchitecture.Aarch64))
        {
            throw Model.Validate.Fail(prefix + "architecture", $"'{arch}' is not a supported architecture; expected X86_64 or Aarch64.");
        }

        if (r.Strategy is { } s && s is not (PlacementStrategy.BinPack or PlacementStrategy.Spread))
        {
            throw Model.Validate.Fail(prefix + "strategy", $"'{s}' is not a strategy; expected BinPack or Spread.");
        }

        Model.Validate.Range(r.MinUptimeBasisPoints, 0, 10_000, prefix + "minUptimeBasisPoints");
        if (r.RequiredTags is { Count: > 64 } tags)
        {
            throw Model.Validate.Fail(prefix + "requiredTags", $"{tags.Count} tags given; at most 64 are allowed.");
        }

        if (r.MaxHourlyPriceMicroUsdc is not { } cap)
        {
            return -1;
        }

        Model.Validate.Range(cap, 0, MaxPriceCap, prefix + "maxHourlyPriceMicroUsdc");
        var amounts = ResourceAmounts.Of(res, r.QualityTier);
        var resourceCap = ResourceCap(cap, r.BandwidthTier, options);
        var floorCost = options.PriceFloor.PriceOf(amounts.CpuTwelfths, amounts.MemoryMiB, amounts.StorageGiB, amounts.Gpus);
        if (floorCost > resourceCap)
        {
            var floorTotal = TotalPrice(floorCost, r.BandwidthTier, options);
            throw Model.Validate.Fail(prefix + "maxHourlyPriceMicroUsdc",
                $"{cap} micro-USDC/h is below the platform floor of {floorTotal} micro-USDC/h for this VM " +
                $"({res.ComputePoints} {r.QualityTier} points, {res.MemoryMiB} MiB, {res.StorageGiB} GiB, {res.Gpus} GPUs, {r.BandwidthTier} bandwidth); " +
                "raise the cap or ask for less.");
        }

        return resourceCap;
    }

    /// <summary>The largest node resource price that keeps <c>ceil(price * multiplier) + bandwidth rate</c> within <paramref name="cap"/>.</summary>
    public static long ResourceCap(long cap, BandwidthTier tier, SchedulerOptions options)
    {
        var spec = options.BandwidthTiers[tier];
        var rest = cap - BandwidthRate(spec);
        return rest < 0 ? -1 : (long)decimal.Floor(rest / spec.PriceMultiplier);
    }

    /// <summary>The VM's total hourly price for a node resource price: <c>ceil(price * multiplier) + bandwidth rate</c>.</summary>
    public static long TotalPrice(long resourcePrice, BandwidthTier tier, SchedulerOptions options)
    {
        var spec = options.BandwidthTiers[tier];
        return (long)decimal.Ceiling(resourcePrice * spec.PriceMultiplier) + BandwidthRate(spec);
    }

    private static long BandwidthRate(BandwidthTierSpec spec) => (long)decimal.Ceiling(spec.HourlyRateUsdc * 1_000_000m);
}
