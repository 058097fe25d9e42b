using System.Diagnostics.CodeAnalysis;
using System.Text;
using Nethereum.Util;

namespace DeCloud.Core.Model;

/// <summary>
/// An Ethereum account address (20 bytes). Parsing accepts <c>0x</c> + 40 hex digits; a mixed-case
/// address must carry a valid EIP-55 checksum (all-lower and all-upper are accepted as unchecksummed).
/// </summary>
public readonly record struct WalletAddress
{
    private readonly string? _lower;

    private WalletAddress(string lower) => _lower = lower;

    /// <summary>True for <c>default(WalletAddress)</c>.</summary>
    public bool IsEmpty => _lower is null;

    /// <summary>Parses an address; throws <see cref="DeCloudValidationException"/> naming <paramref name="field"/>.</summary>
    public static WalletAddress Parse(string? s, string field = "walletAddress") =>
        TryParse(s, out var a, out var error) ? a : throw Validate.Fail(field, error);

    /// <summary>Tries to parse an address.</summary>
    public static bool TryParse([NotNullWhen(true)] string? s, out WalletAddress address) => TryParse(s, out address, out _);

    /// <summary>Tries to parse an address, with the reason when it fails.</summary>
    public static bool TryParse([NotNullWhen(true)] string? s, out WalletAddress address, out string error)
    {
        address = default;
        if (s is null || s.Length != 42 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        {
            error = $"'{Show(s)}' is not a wallet address; expected 0x followed by 40 hex digits.";
            return false;
        }

        bool hasLower = false, hasUpper = false;
        for (var i = 2; i < 42; i++)
        {
            var c = s[i];
            if (!char.IsAsciiHexDigit(c))
            {
                error = $"'{Show(s)}' is not a wallet address: '{c}' at position {i} is not a hex digit.";
                return false;
            }

            hasLower |= c is >= 'a' and <= 'f';
            hasUpper |= c is >= 'A' and <= 'F';
        }

        var lower = "0x" + s[2..].ToLowerInvariant();
        if (hasLower && hasUpper && !string.Equals(ToChecksum(lower), "0x" + s[2..], StringComparison.Ordinal))
        {
            error = $"'{s}' has a bad EIP-55 checksum; expected {ToChecksum(lower)}.";
            return false;
        }

        address = new WalletAddress(lower);
        error = string.Empty;
        return true;
    }

    /// <summary>The lower-case form with <c>0x</c>.</summary>
    public string ToLowerHex() => _lower ?? throw new InvalidOperationException("A default WalletAddress has no value.");

    /// <summary>The EIP-55 mixed-case checksummed form.</summary>
    public string ToChecksumHex() => ToChecksum(ToLowerHex());

    /// <inheritdoc />
    public override string ToString() => _lower is null ? string.Empty : ToChecksum(_lower);

    private static string ToChecksum(string lower0x)
    {
        var hex = lower0x.AsSpan(2);
        var hash = Sha3Keccack.Current.CalculateHash(Encoding.ASCII.GetBytes(hex.ToString()));
        var sb = new StringBuilder("0x", 42);
        for (var i = 0; i < 40; i++)
        {
            var nibble = (hash[i / 2] >> (i % 2 == 0 ? 4 : 0)) & 0xF;
            sb.Append(hex[i] is >= 'a' and <= 'f' && nibble >= 8 ? char.ToUpperInvariant(hex[i]) : hex[i]);
        }

        return sb.ToString();
    }

    private static string Show(string? s) => s is null ? "null" : s.Length <= 64 ? s : s[..64] + "...";
}
