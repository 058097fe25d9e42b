namespace DeCloud.Core.Security.Paseto;

/// <summary>
/// Strict, allocation-free base64url (RFC 4648 §5) without padding, as PASETO requires: padding,
/// characters outside the alphabet, an impossible length (4n+1) and non-zero unused trailing bits
/// are all refused, so every byte sequence has exactly one accepted encoding.
/// </summary>
internal static class StrictBase64Url
{
    private static readonly sbyte[] Table = BuildTable();

    /// <summary>The decoded length of <paramref name="encodedLength"/> characters, or -1 when no input has that length.</summary>
    public static int DecodedLength(int encodedLength) => (encodedLength % 4) switch
    {
        0 => encodedLength / 4 * 3,
        2 => (encodedLength / 4 * 3) + 1,
        3 => (encodedLength / 4 * 3) + 2,
        _ => -1,
    };

    /// <summary>The encoded length of <paramref name="length"/> bytes.</summary>
    public static int EncodedLength(int length) => ((length / 3) * 4) + (length % 3 == 0 ? 0 : (length % 3) + 1);

    /// <summary>Decodes <paramref name="source"/> into <paramref name="destination"/>; false on any non-canonical input.</summary>
    public static bool TryDecode(ReadOnlySpan<char> source, Span<byte> destination, out int written)
    {
        written = DecodedLength(source.Length);
        if (written < 0 || destination.Length < written)
        {
            written = 0;
            return false;
        }

        var table = Table;
        int si = 0, di = 0;
        var whole = source.Length / 4 * 4;
        while (si < whole)
        {
            int a = Map(table, source[si]), b = Map(table, source[si + 1]), c = Map(table, source[si + 2]), d = Map(table, source[si + 3]);
            if ((a | b | c | d) < 0)
            {
                written = 0;
                return false;
            }

            var v = (a << 18) | (b << 12) | (c << 6) | d;
            destination[di] = (byte)(v >> 16);
            destination[di + 1] = (byte)(v >> 8);
            destination[di + 2] = (byte)v;
            si += 4;
            di += 3;
        }

        var rest = source.Length - whole;
        if (rest == 2)
        {
            int a = Map(table, source[si]), b = Map(table, source[si + 1]);
            if ((a | b) < 0 || (b & 0x0F) != 0)
            {
                written = 0;
                return false;
            }

            destination[di] = (byte)((a << 2) | (b >> 4));
        }
        else if (rest == 3)
        {
            int a = Map(table, source[si]), b = Map(table, source[si + 1]), c = Map(table, source[si + 2]);
            if ((a | b | c) < 0 || (c & 0x03) != 0)
            {
                written = 0;
                return false;
            }

            var v = (a << 12) | (b << 6) | c;
            destination[di] = (byte)(v >> 10);
            destination[di + 1] = (byte)(v >> 2);
        }

        return true;
    }

    /// <summary>Encodes without padding.</summary>
    public static string Encode(ReadOnlySpan<byte> data) => System.Buffers.Text.Base64Url.EncodeToString(data);

    /// <summary>Decodes a whole string, or null when it is not canonical base64url.</summary>
    public static byte[]? DecodeOrNull(ReadOnlySpan<char> source)
    {
        var length = DecodedLength(source.Length);
        if (length < 0)
        {
            return null;
        }

        var bytes = new byte[length];
        return TryDecode(source, bytes, out _) ? bytes : null;
    }

    private static int Map(sbyte[] table, char c) => c < 128 ? table[c] : -1;

    private static sbyte[] BuildTable()
    {
        var t = new sbyte[128];
        Array.Fill(t, (sbyte)-1);
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (var i = 0; i < alphabet.Length; i++)
        {
            t[alphabet[i]] = (sbyte)i;
        }

        return t;
    }
}
