using System.Numerics;
using DeCloud.Core.Model;
using DeCloud.Core.Security.Siwe;
using Microsoft.Extensions.Time.Testing;
using Nethereum.Signer;

namespace DeCloud.Core.Tests.Security;

/// <summary>A wallet with a fixed key that signs SIWE messages like a browser wallet (personal_sign, v = 27/28).</summary>
internal sealed class TestWallet
{
    private static readonly BigInteger N = BigInteger.Parse("0FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", System.Globalization.NumberStyles.HexNumber);

    private readonly EthECKey _key;

    public TestWallet(string privateKeyHex = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
    {
        _key = new EthECKey(privateKeyHex);
        Address = WalletAddress.Parse(_key.GetPublicAddress());
    }

    public WalletAddress Address { get; }

    public string Sign(string message) => new EthereumMessageSigner().EncodeUTF8AndSign(message, _key);

    /// <summary>The malleable twin (r, n - s, v flipped) of a signature: it recovers to the same key.</summary>
    public static string HighSTwin(string signature)
    {
        var bytes = Convert.FromHexString(signature[2..]);
        var s = new BigInteger(bytes.AsSpan(32, 32), isUnsigned: true, isBigEndian: true);
        var twin = (N - s).ToByteArray(isUnsigned: true, isBigEndian: true);
        var result = (byte[])bytes.Clone();
        Array.Clear(result, 32, 32);
        twin.CopyTo(result, 64 - twin.Length);
        result[64] = (byte)(bytes[64] == 27 ? 28 : 27);
        return "0x" + Convert.ToHexStringLower(result);
    }

    public static string WithV(string signature, byte v)
    {
        var bytes = Convert.FromHexString(signature[2..]);
        bytes[64] = v;
        return "0x" + Convert.ToHexStringLower(bytes);
    }
}

internal static class SiweTestKit
{
    public static readonly DateTimeOffset Now = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    public static SiweOptions Options() => new()
    {
        Domain = "app.decloud.example",
        Uri = "https://app.decloud.example",
        ChainId = 137,
    };

    public static SiweMessage Message(WalletAddress address, string nonce = "abcdefgh12345678", DateTimeOffset? issuedAt = null,
        string domain = "app.decloud.example", long chainId = 137, string uri = "https://app.decloud.example/login",
        DateTimeOffset? expiration = null, DateTimeOffset? notBefore = null, IReadOnlyList<string>? resources = null) => new()
        {
            Domain = domain,
            Address = address,
            Statement = "Sign in to DeCloud",
            Uri = uri,
            ChainId = chainId,
            Nonce = nonce,
            IssuedAt = issuedAt ?? Now,
            ExpirationTime = expiration,
            NotBefore = notBefore,
            Resources = resources ?? [],
        };

    public static FakeTimeProvider Clock() => new(Now);
}
