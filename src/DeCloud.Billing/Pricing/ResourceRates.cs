namespace DeCloud.Billing.Pricing;

/// <summary>Hourly prices of resources, in USDC.</summary>
/// <param name="CpuPerPointHour">Per compute point (of CPU actually given) per hour.</param>
/// <param name="MemoryPerGiBHour">Per GiB of memory per hour.</param>
/// <param name="StoragePerGiBHour">Per GiB of storage per hour.</param>
/// <param name="GpuPerHour">Per GPU per hour.</param>
public sealed record ResourceRates(decimal CpuPerPointHour, decimal MemoryPerGiBHour, decimal StoragePerGiBHour, decimal GpuPerHour)
{
    /// <summary>The largest rate accepted for any resource (1,000 USDC per unit-hour): more is absurd.</summary>
    public const decimal MaxRate = 1000m;

    /// <summary>Default platform floors: CPU 0.005, memory 0.0025, storage 0.00005, GPU 0.05.</summary>
    public static ResourceRates DefaultFloors { get; } = new(0.005m, 0.0025m, 0.00005m, 0.05m);

    /// <summary>Default rates: CPU 0.01, memory 0.005, storage 0.0001, GPU 0.10.</summary>
    public static ResourceRates DefaultRates { get; } = new(0.01m, 0.005m, 0.0001m, 0.10m);

    /// <summary>Each rate raised to at least the matching rate of <paramref name="floors"/>.</summary>
    public ResourceRates AtLeast(ResourceRates floors)
    {
        ArgumentNullException.ThrowIfNull(floors);
        return new(
            Math.Max(CpuPerPointHour, floors.CpuPerPointHour),
            Math.Max(MemoryPerGiBHour, floors.MemoryPerGiBHour),
            Math.Max(StoragePerGiBHour, floors.StoragePerGiBHour),
            Math.Max(GpuPerHour, floors.GpuPerHour));
    }

    /// <summary>Throws <see cref="BillingValidationException"/> naming the rate that is negative or absurd.</summary>
    public ResourceRates Validate(string field)
    {
        One(CpuPerPointHour, field + ".cpuPerPointHour");
        One(MemoryPerGiBHour, field + ".memoryPerGiBHour");
        One(StoragePerGiBHour, field + ".storagePerGiBHour");
        One(GpuPerHour, field + ".gpuPerHour");
        return this;

        static void One(decimal rate, string name)
        {
            if (rate < 0 || rate > MaxRate)
            {
                throw Check.Fail(name, $"{rate} USDC is out of range; expected 0..{MaxRate} USDC per unit-hour.");
            }
        }
    }
}
