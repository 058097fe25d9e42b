using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using NSec.Cryptography;

namespace DeCloud.Core.Security.Paseto;

/// <summary>
/// PASETO version 4, purpose <c>public</c>: Ed25519 signatures over the pre-authentication encoding
/// (PAE) of header, message, footer and implicit assertion. Implemented from the PASETO specification
/// and checked against its official test vectors.
/// </summary>
public static class PasetoV4Public
{
    /// <summary>The token header, <c>v4.public.</c>.</summary>
    public const string Header = "v4.public.";

    /// <summary>The Ed25519 signature length in bytes.</summary>
    public const int SignatureSize = 64;

    private static ReadOnlySpan<byte> HeaderUtf8 => "v4.public."u8;

    // PAE prefix before the message: LE64(4) LE64(10) "v4.public." LE64(|m|).
    private const int MessageOffset = 8 + 8 + 10 + 8;

    /// <summary>Signs <paramref name="message"/> and returns the token.</summary>
    /// <param name="secretKey">An Ed25519 key from NSec.</param>
    /// <param name="message">The payload (for DeCloud tokens, the JSON claims).</param>
    /// <param name="footer">The unencrypted, authenticated footer (empty for none).</param>
    /// <param name="implicitAssertion">Authenticated data that is not part of the token (empty for none).</param>
    public static string Sign(Key secretKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> footer = default, ReadOnlySpan<byte> implicitAssertion = default)
    {
        ArgumentNullException.ThrowIfNull(secretKey);
        if (secretKey.Algorithm is not Ed25519)
        {
            throw new ArgumentException($"PASETO v4.public needs an Ed25519 key, not {secretKey.Algorithm.GetType().Name}.", nameof(secretKey));
        }

        var paeLength = PaeLength(message.Length, footer.Length, implicitAssertion.Length);
        var rented = ArrayPool<byte>.Shared.Rent(paeLength);
        try
        {
            var pae = rented.AsSpan(0, paeLength);
            WritePae(pae, message, footer, implicitAssertion);
            Span<byte> signature = stackalloc byte[SignatureSize];
            SignatureAlgorithm.Ed25519.Sign(secretKey, pae, signature);

            var body = new byte[message.Length + SignatureSize];
            message.CopyTo(body);
            signature.CopyTo(body.AsSpan(message.Length));
            var sb = new StringBuilder(Header.Length + StrictBase64Url.EncodedLength(body.Length) + 1 + StrictBase64Url.EncodedLength(footer.Length));
            sb.Append(Header).Append(StrictBase64Url.Encode(body));
            if (!footer.IsEmpty)
            {
                sb.Append('.').Append(StrictBase64Url.Encode(footer));
            }

            return sb.ToString();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Verifies <paramref name="token"/> with <paramref name="publicKey"/> and returns its message and
    /// footer. Every malformed or forged input yields a status other than <see cref="TokenStatus.Valid"/>.
    /// </summary>
    public static TokenStatus Verify(ReadOnlySpan<char> token, PublicKey publicKey, ReadOnlySpan<byte> implicitAssertion,
        out byte[] message, out byte[] footer)
    {
        ArgumentNullException.ThrowIfNull(publicKey);
        message = [];
        footer = [];
        var status = Split(token, out var body, out var footerChars);
        if (status != TokenStatus.Valid)
        {
            return status;
        }

        var decodedFooter = StrictBase64Url.DecodeOrNull(footerChars);
        if (decodedFooter is null)
        {
            return TokenStatus.BadEncoding;
        }

        byte[]? scratch = null;
        try
        {
            status = VerifyBody(body, decodedFooter, implicitAssertion, publicKey, ref scratch, out var m);
            if (status == TokenStatus.Valid)
            {
                message = m.ToArray();
                footer = decodedFooter;
            }

            return status;
        }
        finally
        {
            if (scratch is not null)
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }
        }
    }

    /// <summary>Checks the header and splits the token into its base64url body and footer (footer may be empty).</summary>
    internal static TokenStatus Split(ReadOnlySpan<char> token, out ReadOnlySpan<char> body, out ReadOnlySpan<char> footer)
    {
        body = default;
        footer = default;
        var firstDot = token.IndexOf('.');
        if (firstDot <= 0)
        {
            return TokenStatus.Malformed;
        }

        var rest = token[(firstDot + 1)..];
        var secondDot = rest.IndexOf('.');
        if (secondDot < 0)
        {
            return TokenStatus.Malformed;
        }

        if (!token[..firstDot].SequenceEqual("v4"))
        {
            return TokenStatus.WrongVersion;
        }

        if (!rest[..secondDot].SequenceEqual("public"))
        {
            return TokenStatus.WrongPurpose;
        }

        var payload = rest[(secondDot + 1)..];
        var footerDot = payload.IndexOf('.');
        if (footerDot >= 0)
        {
            footer = payload[(footerDot + 1)..];
            payload = payload[..footerDot];
            if (footer.IsEmpty || footer.Contains('.'))
            {
                return TokenStatus.Malformed;
            }
        }

        if (payload.IsEmpty)
        {
            return TokenStatus.Malformed;
        }

        body = payload;
        return TokenStatus.Valid;
    }

    /// <summary>
    /// Decodes the body into a pooled PAE buffer (rented into <paramref name="scratch"/>, which the
    /// caller returns) and verifies the signature; on success <paramref name="message"/> points into it.
    /// </summary>
    internal static TokenStatus VerifyBody(ReadOnlySpan<char> body, ReadOnlySpan<byte> footer, ReadOnlySpan<byte> implicitAssertion,
        PublicKey publicKey, ref byte[]? scratch, out ReadOnlySpan<byte> message)
    {
        message = default;
        var bodyLength = StrictBase64Url.DecodedLength(body.Length);
        if (bodyLength < 0)
        {
            return TokenStatus.BadEncoding;
        }

        if (bodyLength < SignatureSize)
        {
            return TokenStatus.Truncated;
        }

        var messageLength = bodyLength - SignatureSize;
        var paeLength = PaeLength(messageLength, footer.Length, implicitAssertion.Length);
        scratch = ArrayPool<byte>.Shared.Rent(Math.Max(paeLength, MessageOffset + bodyLength));
        var buffer = scratch.AsSpan();
        if (!StrictBase64Url.TryDecode(body, buffer[MessageOffset..], out _))
        {
            return TokenStatus.BadEncoding;
        }

        Span<byte> signature = stackalloc byte[SignatureSize];
        buffer.Slice(MessageOffset + messageLength, SignatureSize).CopyTo(signature);
        var pae = buffer[..paeLength];
        WritePaeAroundMessage(pae, messageLength, footer, implicitAssertion);
        if (!SignatureAlgorithm.Ed25519.Verify(publicKey, pae, signature))
        {
            return TokenStatus.BadSignature;
        }

        message = buffer.Slice(MessageOffset, messageLength);
        return TokenStatus.Valid;
    }

    /// <summary>The length of PAE(header, message, footer, implicit).</summary>
    internal static int PaeLength(int messageLength, int footerLength, int implicitLength) =>
        MessageOffset + messageLength + 8 + footerLength + 8 + implicitLength;

    /// <summary>Pre-authentication encoding of any pieces (PASETO §PAE): LE64(n) then LE64(len) || bytes for each.</summary>
    internal static byte[] Pae(params ReadOnlySpan<byte[]> pieces)
    {
        var length = 8;
        foreach (var p in pieces)
        {
            length += 8 + p.Length;
        }

        var result = new byte[length];
        var span = result.AsSpan();
        WriteLe64(span, pieces.Length);
        var offset = 8;
        foreach (var p in pieces)
        {
            WriteLe64(span[offset..], p.Length);
            p.CopyTo(span[(offset + 8)..]);
            offset += 8 + p.Length;
        }

        return result;
    }

    private static void WritePae(Span<byte> pae, ReadOnlySpan<byte> message, ReadOnlySpan<byte> footer, ReadOnlySpan<byte> implicitAssertion)
    {
        message.CopyTo(pae[MessageOffset..]);
        WritePaeAroundMessage(pae, message.Length, footer, implicitAssertion);
    }

    private static void WritePaeAroundMessage(Span<byte> pae, int messageLength, ReadOnlySpan<byte> footer, ReadOnlySpan<byte> implicitAssertion)
    {
        WriteLe64(pae, 4);
        WriteLe64(pae[8..], HeaderUtf8.Length);
        HeaderUtf8.CopyTo(pae[16..]);
        WriteLe64(pae[26..], messageLength);
        var offset = MessageOffset + messageLength;
        WriteLe64(pae[offset..], footer.Length);
        footer.CopyTo(pae[(offset + 8)..]);
        offset += 8 + footer.Length;
        WriteLe64(pae[offset..], implicitAssertion.Length);
        implicitAssertion.CopyTo(pae[(offset + 8)..]);
    }

    // LE64 with the most significant bit cleared, as the specification requires.
    private static void WriteLe64(Span<byte> destination, long value) =>
        BinaryPrimitives.WriteUInt64LittleEndian(destination, (ulong)value & 0x7FFF_FFFF_FFFF_FFFFUL);
}
