using System.Globalization;
using DeCloud.Virtualization.Libvirt;

namespace DeCloud.Virtualization.Qos;

/// <summary>
/// How much of a physical core each vCPU is entitled to, in twelfths (12 = a whole core, 3 = a quarter).
/// Twelfths represent every DeCloud overcommit ratio exactly (1:1, 1.5:1, 2:1, 4:1 are 12, 8, 6, 3).
/// <see cref="QualityTiers"/> holds the presets.
/// </summary>
/// <param name="CoreTwelfths">1..12.</param>
public readonly record struct CpuShare(int CoreTwelfths)
{
    /// <summary>The CFS period: 100 ms, CFS's and libvirt's default.</summary>
    public const ulong PeriodMicroseconds = 100_000;

    /// <summary>cgroup v1 <c>cpu.shares</c> of one whole core (the kernel's default weight).</summary>
    public const ulong SharesPerCore = 1024;

    /// <summary>Validates the share; throws naming the field when out of range.</summary>
    public CpuShare Validate() => CoreTwelfths is >= 1 and <= 12
        ? this
        : throw new ArgumentOutOfRangeException(nameof(CoreTwelfths), CoreTwelfths, "CpuShare.CoreTwelfths must be between 1 (1/12 core) and 12 (a whole core).");

    /// <summary>
    /// The <c>&lt;cputune&gt;</c> numbers for <paramref name="virtualCpus"/> vCPUs:
    /// <list type="bullet">
    /// <item>period = 100 000 µs;</item>
    /// <item>quota per vCPU thread = period × twelfths / 12 (Standard 66 666, Balanced 50 000, Burstable 25 000 µs);
    /// a whole core (Dedicated) is not capped (-1), its guarantee comes from placement without overcommit;</item>
    /// <item>shares = vCPUs × 1024 × twelfths / 12, so under contention CPU time divides in tier proportion.</item>
    /// </list>
    /// Only vCPU threads are capped (<c>&lt;quota&gt;</c>, not <c>&lt;global_quota&gt;</c> or <c>&lt;emulator_quota&gt;</c>):
    /// qemu's emulator and I/O threads, which do the disk and virtio work of a boot, keep running uncapped, and a
    /// 100 ms period means a Burstable vCPU waits at most 75 ms between slices, so boot and guest timers progress
    /// at a quarter of a core instead of stalling.
    /// </summary>
    public CpuSchedule ToSchedule(int virtualCpus)
    {
        Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(virtualCpus, 1);
        var quota = CoreTwelfths == 12 ? -1 : (long)(PeriodMicroseconds * (ulong)CoreTwelfths / 12);
        var shares = (ulong)virtualCpus * SharesPerCore * (ulong)CoreTwelfths / 12;
        return new CpuSchedule(PeriodMicroseconds, quota, Math.Clamp(shares, 2, 262_144));
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{CoreTwelfths}/12 core per vCPU");
}

/// <summary>DeCloud's quality tiers (CPU overcommit ratio) as per-vCPU core shares.</summary>
public static class QualityTiers
{
    /// <summary>Dedicated, 1:1: a whole core per vCPU, uncapped.</summary>
    public static CpuShare Dedicated { get; } = new(12);

    /// <summary>Standard, 1.5:1: two thirds of a core per vCPU.</summary>
    public static CpuShare Standard { get; } = new(8);

    /// <summary>Balanced, 2:1: half a core per vCPU.</summary>
    public static CpuShare Balanced { get; } = new(6);

    /// <summary>Burstable, 4:1: a quarter of a core per vCPU.</summary>
    public static CpuShare Burstable { get; } = new(3);
}
