using DeCloud.Core.Model;

namespace DeCloud.Core.Security.Siwe;

/// <summary>
/// EIP-191 <c>personal_sign</c> signatures outside SIWE (agent registrations, relay-token proofs): the same strict checks
/// as sign-in (65 bytes as <c>0x</c> + 130 hex digits, v 27 or 28, r and s in range, low S only) and the same fast
/// recovery. Malformed or hostile input gives false and a reason, never an exception.
/// </summary>
public static class PersonalSign
{
    /// <summary>Recovers the wallet that signed <paramref name="message"/>; false with the reason when the signature is unusable.</summary>
    public static bool TryRecoverSigner(string message, string? signatureHex, out WalletAddress signer, out string error)
    {
        ArgumentNullException.ThrowIfNull(message);
        signer = default;
        if (!SiweVerifier.TryDecodeSignature(signatureHex, out var signature))
        {
            error = "the signature is not 0x followed by 130 hex digits (65 bytes).";
            return false;
        }

        Span<byte> recovered = stackalloc byte[20];
        if (SiweVerifier.RecoverSigner(message, signature, recovered) is { } failure)
        {
            error = failure.Error;
            return false;
        }

        signer = WalletAddress.Parse("0x" + Convert.ToHexStringLower(recovered));
        error = string.Empty;
        return true;
    }
}
