using System.Diagnostics.CodeAnalysis;

namespace DeCloud.Core.Model;

/// <summary>A VM's identity: a GUID, written as 32 lower-case hex digits.</summary>
public readonly record struct VmId(Guid Value) : ISpanParsable<VmId>
{
    /// <summary>A new random id.</summary>
    public static VmId New() => new(Guid.NewGuid());

    /// <summary>Parses a GUID in any standard format; throws <see cref="DeCloudValidationException"/>.</summary>
    public static VmId Parse(string s) => Parse(s, null);

    /// <inheritdoc />
    public static VmId Parse(string s, IFormatProvider? provider) =>
        TryParse(s, provider, out var id) ? id : throw Validate.Fail("vmId", $"'{s}' is not a VM id; expected a GUID.");

    /// <inheritdoc />
    public static VmId Parse(ReadOnlySpan<char> s, IFormatProvider? provider) =>
        TryParse(s, provider, out var id) ? id : throw Validate.Fail("vmId", $"'{s}' is not a VM id; expected a GUID.");

    /// <inheritdoc />
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out VmId result) =>
        TryParse(s.AsSpan(), provider, out result);

    /// <inheritdoc />
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out VmId result)
    {
        var ok = Guid.TryParse(s, out var g) && g != Guid.Empty;
        result = ok ? new VmId(g) : default;
        return ok;
    }

    /// <inheritdoc />
    public override string ToString() => Value.ToString("N");
}
