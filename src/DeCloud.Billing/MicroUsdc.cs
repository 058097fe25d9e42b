using System.Globalization;

namespace DeCloud.Billing;

/// <summary>
/// Money is an integer count of micro-USDC (USDC has 6 decimals: 1 USDC = 1,000,000). Rates are
/// <see cref="decimal"/>; nothing is ever a floating-point number. Rounding happens once, when an
/// amount is posted, by <see cref="FloorFromUsdc"/> over a cumulative exact total, so the remainder
/// carries forward and many small postings add up exactly to the rounded total.
/// </summary>
public static class MicroUsdc
{
    /// <summary>Micro-USDC in one USDC.</summary>
    public const long PerUsdc = 1_000_000;

    /// <summary>The largest amount accepted for one posting (one billion USDC): larger is treated as absurd.</summary>
    public const long MaxAmount = 1_000_000_000L * PerUsdc;

    /// <summary>The exact amount <paramref name="usdc"/> in micro-USDC, rounded toward zero.</summary>
    public static long FloorFromUsdc(decimal usdc)
    {
        var micro = decimal.Floor(usdc * PerUsdc);
        if (micro > MaxAmount || micro < -MaxAmount)
        {
            throw Check.Fail("amount", $"{usdc} USDC is out of range; at most {MaxAmount / PerUsdc} USDC.");
        }

        return (long)micro;
    }

    /// <summary>Converts a whole number of USDC given as decimal into micro-USDC; throws if it has more than 6 decimals.</summary>
    public static long FromUsdcExact(decimal usdc)
    {
        var micro = usdc * PerUsdc;
        if (micro != decimal.Truncate(micro))
        {
            throw Check.Fail("amount", $"{usdc} USDC has more than 6 decimals.");
        }

        return FloorFromUsdc(usdc);
    }

    /// <summary>The amount in USDC.</summary>
    public static decimal ToUsdc(long microUsdc) => microUsdc / (decimal)PerUsdc;

    /// <summary>Formats an amount as USDC with 6 decimals, e.g. <c>12.500000</c>.</summary>
    public static string Format(long microUsdc) => ToUsdc(microUsdc).ToString("0.000000", CultureInfo.InvariantCulture);
}
