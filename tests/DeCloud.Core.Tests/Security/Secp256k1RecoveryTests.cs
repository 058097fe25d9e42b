using System.Text;
using CsCheck;
using DeCloud.Core.Security.Siwe;
using Nethereum.Signer;

namespace DeCloud.Core.Tests.Security;

public sealed class Secp256k1RecoveryTests
{
    [Fact]
    public void TryRecoverAddress_AnyKeyAndMessage_AgreesWithNethereumRecovery()
    {
        Gen.Byte.Array[32].Select(Gen.String[Gen.Char.AlphaNumeric, 0, 200]).Sample(t =>
        {
            var (seed, text) = t;
            seed[0] = (byte)Math.Clamp((int)seed[0], 1, 0xFE); // a valid private key (below the group order)
            var key = new EthECKey(seed, true);
            var signatureHex = new EthereumMessageSigner().EncodeUTF8AndSign(text, key);
            var sig = Convert.FromHexString(signatureHex.AsSpan(2));
            var hash = SiweVerifier.PersonalSignHash(text);
            Span<byte> address = stackalloc byte[20];

            Assert.True(Secp256k1Recovery.TryRecoverAddress(hash, sig.AsSpan(0, 64), sig[64] - 27, address));

            var nethereum = EthECKey.RecoverFromSignature(EthECDSASignatureFactory.FromComponents(sig[..32], sig[32..64], sig[64]), hash).GetPublicAddress();
            Assert.Equal(nethereum.ToLowerInvariant(), "0x" + Convert.ToHexStringLower(address));
            Assert.Equal(key.GetPublicAddress().ToLowerInvariant(), "0x" + Convert.ToHexStringLower(address));
        }, iter: 40);
    }

    [Fact]
    public void PersonalSignHash_MatchesTheEip191Definition()
    {
        const string text = "héllo";
        var bytes = Encoding.UTF8.GetBytes(text);
        var prefixed = Encoding.ASCII.GetBytes("\u0019Ethereum Signed Message:\n" + bytes.Length).Concat(bytes).ToArray();

        Assert.Equal(Nethereum.Util.Sha3Keccack.Current.CalculateHash(prefixed), SiweVerifier.PersonalSignHash(text));
    }

    [Fact]
    public void TryRecoverAddress_RandomCompactSignatures_NeverThrow()
    {
        Gen.Byte.Array[64].Select(Gen.Byte.Array[32], Gen.Int[0, 1]).Sample(t =>
        {
            Span<byte> address = stackalloc byte[20];
            _ = Secp256k1Recovery.TryRecoverAddress(t.Item2, t.Item1, t.Item3, address);
        }, iter: 300);
    }
}
