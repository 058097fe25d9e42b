using NBitcoin.Secp256k1;
using Nethereum.Util;

namespace DeCloud.Core.Security.Siwe;

/// <summary>
/// Recovers the Ethereum address that made a secp256k1 signature, with NBitcoin.Secp256k1 (the
/// secp256k1 port that Nethereum.Signer ships with and uses for its recoverable signatures) and
/// Nethereum's Keccak-256. Nethereum's <c>EthECKey.RecoverFromSignature</c> computes the same
/// address (the tests check they agree) but on BouncyCastle's generic curve arithmetic, about ten
/// times slower.
/// </summary>
internal static class Secp256k1Recovery
{
    /// <summary>
    /// The address (20 bytes) for a 32-byte hash and a 64-byte compact signature r || s with recovery
    /// id 0 or 1; false when the signature names no public key.
    /// </summary>
    public static bool TryRecoverAddress(ReadOnlySpan<byte> hash, ReadOnlySpan<byte> compact, int recoveryId, Span<byte> address)
    {
        if (hash.Length != 32 || compact.Length != 64 || recoveryId is not (0 or 1) || address.Length < 20)
        {
            return false;
        }

        if (!SecpRecoverableECDSASignature.TryCreateFromCompact(compact, recoveryId, out var signature) || signature is null
            || !ECPubKey.TryRecover(Context.Instance, signature, hash, out var publicKey) || publicKey is null)
        {
            return false;
        }

        var uncompressed = new byte[65];
        publicKey.WriteToSpan(false, uncompressed, out _);
        var digest = Sha3Keccack.Current.CalculateHash(uncompressed.AsSpan(1).ToArray());
        digest.AsSpan(12, 20).CopyTo(address);
        return true;
    }
}
