using DeCloud.Core.Model;
using DeCloud.Virtualization.Qos;

namespace DeCloud.Agent.Hypervisors;

/// <summary>
/// Maps Core's tier names, as they arrive in commands, onto DeCloud.Virtualization's QoS types: a quality tier
/// becomes the per-vCPU core share of <c>&lt;cputune&gt;</c> (Core's twelfths: Dedicated 12, Standard 8, Balanced 6,
/// Burstable 3) and a bandwidth tier becomes a <see cref="BandwidthLimit"/> (Virtualization's preset with its peak and
/// burst, or the orchestrator's own rate when its catalog differs from the default). Unknown names are rejected.
/// </summary>
internal static class VmTiers
{
    /// <summary>The core share of <paramref name="qualityTier"/>; an empty name (an older orchestrator) means Dedicated (uncapped).</summary>
    public static CpuShare CpuShareOf(string? qualityTier)
    {
        if (string.IsNullOrEmpty(qualityTier))
        {
            return DeCloud.Virtualization.Qos.QualityTiers.Dedicated;
        }

        if (!Enum.TryParse<QualityTier>(qualityTier, ignoreCase: true, out var tier) || !Core.Model.QualityTiers.IsDefined(tier) || int.TryParse(qualityTier, out _))
        {
            throw new ArgumentException($"quality tier '{qualityTier}' is unknown; expected Dedicated, Standard, Balanced or Burstable.");
        }

        return new CpuShare(Core.Model.QualityTiers.TwelfthsPerPoint(tier));
    }

    /// <summary>
    /// The NIC limit of <paramref name="bandwidthTier"/> at <paramref name="bytesPerSecond"/> (the orchestrator's figure).
    /// 0 or the tier's default rate uses Virtualization's preset (Unmetered: no cap; no tier name and 0: no cap); another
    /// rate keeps the preset's shape (peak twice the average, about a fifth of a second of burst).
    /// </summary>
    public static BandwidthLimit BandwidthOf(string? bandwidthTier, long bytesPerSecond)
    {
        if (bytesPerSecond < 0)
        {
            throw new ArgumentException($"bandwidth_bytes_per_second {bytesPerSecond} must not be negative.");
        }

        BandwidthLimit preset;
        if (string.IsNullOrEmpty(bandwidthTier))
        {
            preset = BandwidthLimit.Unlimited;
        }
        else if (Enum.TryParse<BandwidthTier>(bandwidthTier, ignoreCase: true, out var tier) && BandwidthTierCatalog.IsDefined(tier) && !int.TryParse(bandwidthTier, out _))
        {
            preset = tier switch
            {
                BandwidthTier.Basic => BandwidthTiers.Basic,
                BandwidthTier.Standard => BandwidthTiers.Standard,
                BandwidthTier.Performance => BandwidthTiers.Performance,
                _ => BandwidthTiers.Unmetered,
            };
        }
        else
        {
            throw new ArgumentException($"bandwidth tier '{bandwidthTier}' is unknown; expected Basic, Standard, Performance or Unmetered.");
        }

        if (bytesPerSecond == 0 || bytesPerSecond == preset.AverageBytesPerSecond)
        {
            return preset;
        }

        if (bytesPerSecond is < BandwidthLimit.MinBytesPerSecond or > BandwidthLimit.MaxBytesPerSecond / 2)
        {
            throw new ArgumentException($"bandwidth_bytes_per_second {bytesPerSecond} is out of range ({BandwidthLimit.MinBytesPerSecond}-{BandwidthLimit.MaxBytesPerSecond / 2}, or 0 for no cap).");
        }

        var burstKiB = Math.Max(1L, bytesPerSecond / 5 / 1024);
        burstKiB = 1L << (63 - (int)long.LeadingZeroCount(burstKiB));
        return new BandwidthLimit(bytesPerSecond, 2 * bytesPerSecond, burstKiB * 1024).Validate();
    }
}
