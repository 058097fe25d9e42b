using System.Globalization;
using DeCloud.Virtualization.Libvirt;

namespace DeCloud.Virtualization.Qos;

/// <summary>
/// A NIC bandwidth cap in bytes: a sustained <see cref="AverageBytesPerSecond"/>, a <see cref="PeakBytesPerSecond"/>
/// at which up to <see cref="BurstBytes"/> may be sent above the average, in each direction. The default value
/// (all zero) is <see cref="Unlimited"/>. Hosts map their own tiers onto this type; <see cref="BandwidthTiers"/>
/// holds DeCloud's defaults.
/// </summary>
/// <param name="AverageBytesPerSecond">The sustained rate (0: unlimited).</param>
/// <param name="PeakBytesPerSecond">The rate while a burst lasts (0: no separate peak).</param>
/// <param name="BurstBytes">How much may go out at peak before the average applies again (0: no burst allowance).</param>
public readonly record struct BandwidthLimit(long AverageBytesPerSecond, long PeakBytesPerSecond, long BurstBytes)
{
    /// <summary>libvirt's largest rate: an unsigned 32-bit count of kB/s.</summary>
    public const long MaxBytesPerSecond = uint.MaxValue * 1000L;

    /// <summary>The smallest sustained rate the shapers honour (8 kB/s); below it HTB's timer granularity dominates.</summary>
    public const long MinBytesPerSecond = 8_000;

    /// <summary>No cap.</summary>
    public static BandwidthLimit Unlimited => default;

    /// <summary>True when nothing is capped.</summary>
    public bool IsUnlimited => AverageBytesPerSecond == 0;

    /// <summary>A cap of <paramref name="megabitsPerSecond"/> Mbit/s (10^6 bits), with optional peak and burst.</summary>
    public static BandwidthLimit FromMegabitsPerSecond(double megabitsPerSecond, double peakMegabitsPerSecond = 0, long burstBytes = 0) =>
        new BandwidthLimit((long)Math.Round(megabitsPerSecond * 125_000), (long)Math.Round(peakMegabitsPerSecond * 125_000), burstBytes).Validate();

    /// <summary>Checks the limit is one a host can honour; throws <see cref="ArgumentOutOfRangeException"/> naming the bad field otherwise.</summary>
    public BandwidthLimit Validate()
    {
        if (IsUnlimited)
        {
            if (PeakBytesPerSecond != 0 || BurstBytes != 0)
            {
                throw new ArgumentOutOfRangeException(nameof(AverageBytesPerSecond), AverageBytesPerSecond,
                    "BandwidthLimit.AverageBytesPerSecond is 0 (unlimited) but a peak or burst is set; set an average or clear them.");
            }

            return this;
        }

        Check(AverageBytesPerSecond, MinBytesPerSecond, MaxBytesPerSecond, nameof(AverageBytesPerSecond));
        if (PeakBytesPerSecond != 0)
        {
            Check(PeakBytesPerSecond, AverageBytesPerSecond, MaxBytesPerSecond, nameof(PeakBytesPerSecond));
        }

        Check(BurstBytes, 0, uint.MaxValue * 1024L, nameof(BurstBytes));
        return this;
    }

    /// <summary>The same cap in libvirt's units: kB/s (10^3 bytes) for rates, KiB for the burst.</summary>
    public InterfaceRate ToInterfaceRate()
    {
        Validate();
        return IsUnlimited
            ? InterfaceRate.Unlimited
            : new InterfaceRate(
                (uint)Math.Max(1, AverageBytesPerSecond / 1000),
                (uint)(PeakBytesPerSecond / 1000),
                (uint)((BurstBytes + 1023) / 1024));
    }

    /// <inheritdoc />
    public override string ToString() => IsUnlimited
        ? "unlimited"
        : string.Create(CultureInfo.InvariantCulture, $"{AverageBytesPerSecond * 8 / 1e6:0.###} Mbit/s (peak {PeakBytesPerSecond * 8 / 1e6:0.###}, burst {BurstBytes} B)");

    private static void Check(long value, long min, long max, string name)
    {
        if (value < min || value > max)
        {
            throw new ArgumentOutOfRangeException(name, value, string.Create(CultureInfo.InvariantCulture,
                $"BandwidthLimit.{name} must be between {min} and {max} bytes{(name == nameof(BurstBytes) ? string.Empty : "/s")}; got {value}."));
        }
    }
}

/// <summary>
/// DeCloud's bandwidth tiers as limits. libvirt units: 10 Mbit/s = 1250 kB/s, 50 = 6250, 200 = 25000.
/// Peak is twice the average and the burst is about a fifth of a second at the average rate, rounded to a
/// power of two in KiB (256, 1024, 4096 KiB): enough for a web page or a TLS handshake to go out at once,
/// small enough that a sustained transfer sees the tier rate within a second.
/// </summary>
public static class BandwidthTiers
{
    /// <summary>Basic: 10 Mbit/s average, 20 Mbit/s peak, 256 KiB burst.</summary>
    public static BandwidthLimit Basic { get; } = new(1_250_000, 2_500_000, 256 * 1024);

    /// <summary>Standard: 50 Mbit/s average, 100 Mbit/s peak, 1 MiB burst.</summary>
    public static BandwidthLimit Standard { get; } = new(6_250_000, 12_500_000, 1024 * 1024);

    /// <summary>Performance: 200 Mbit/s average, 400 Mbit/s peak, 4 MiB burst.</summary>
    public static BandwidthLimit Performance { get; } = new(25_000_000, 50_000_000, 4096 * 1024);

    /// <summary>Unmetered: no cap (no <c>&lt;bandwidth&gt;</c> element, no shaper).</summary>
    public static BandwidthLimit Unmetered => BandwidthLimit.Unlimited;
}
