using System.Text;
using System.Text.Json;
using DeCloud.Core.Security;
using DeCloud.Core.Security.Paseto;
using NSec.Cryptography;

namespace DeCloud.Core.Tests.Security;

public sealed class PasetoV4PublicTests
{
    public static TheoryData<string> SignVectors() => VectorNames("4-S-");

    public static TheoryData<string> FailureVectors() => VectorNames("4-F-");

    [Theory]
    [MemberData(nameof(SignVectors))]
    public void Sign_OfficialVector_ProducesTheExpectedToken(string name)
    {
        var v = Vector(name);
        using var key = Key.Import(SignatureAlgorithm.Ed25519, Convert.FromHexString(v.GetProperty("secret-key-seed").GetString()!), KeyBlobFormat.RawPrivateKey);

        var token = PasetoV4Public.Sign(key, Utf8(v, "payload"), Utf8(v, "footer"), Utf8(v, "implicit-assertion"));

        Assert.Equal(v.GetProperty("token").GetString(), token);
        Assert.Equal(v.GetProperty("public-key").GetString(), Convert.ToHexStringLower(key.PublicKey.Export(KeyBlobFormat.RawPublicKey)));
    }

    [Theory]
    [MemberData(nameof(SignVectors))]
    public void Verify_OfficialVector_ReturnsPayloadAndFooter(string name)
    {
        var v = Vector(name);
        var pk = PublicKey.Import(SignatureAlgorithm.Ed25519, Convert.FromHexString(v.GetProperty("public-key").GetString()!), KeyBlobFormat.RawPublicKey);

        var status = PasetoV4Public.Verify(v.GetProperty("token").GetString(), pk, Utf8(v, "implicit-assertion"), out var message, out var footer);

        Assert.Equal(TokenStatus.Valid, status);
        Assert.Equal(v.GetProperty("payload").GetString(), Encoding.UTF8.GetString(message));
        Assert.Equal(v.GetProperty("footer").GetString(), Encoding.UTF8.GetString(footer));
    }

    [Theory]
    [MemberData(nameof(SignVectors))]
    public void Verify_OfficialVectorWithOtherImplicitAssertion_IsRefused(string name)
    {
        var v = Vector(name);
        var pk = PublicKey.Import(SignatureAlgorithm.Ed25519, Convert.FromHexString(v.GetProperty("public-key").GetString()!), KeyBlobFormat.RawPublicKey);

        var status = PasetoV4Public.Verify(v.GetProperty("token").GetString(), pk, "{\"other\":true}"u8, out _, out _);

        Assert.Equal(TokenStatus.BadSignature, status);
    }

    [Theory]
    [MemberData(nameof(FailureVectors))]
    public void Verify_OfficialFailureVector_IsRefusedWithReason(string name)
    {
        var v = Vector(name);
        // The v4.public failure cases are verified with the public key of the 4-S vectors where the vector has none.
        var pkHex = v.TryGetProperty("public-key", out var p) ? p.GetString()! : Vector("4-S-1").GetProperty("public-key").GetString()!;
        var pk = PublicKey.Import(SignatureAlgorithm.Ed25519, Convert.FromHexString(pkHex), KeyBlobFormat.RawPublicKey);

        var status = PasetoV4Public.Verify(v.GetProperty("token").GetString(), pk, Utf8(v, "implicit-assertion"), out var message, out _);

        Assert.NotEqual(TokenStatus.Valid, status);
        Assert.Empty(message);
        var token = v.GetProperty("token").GetString()!;
        var expected = token.StartsWith("v4.local.", StringComparison.Ordinal) ? TokenStatus.WrongPurpose
            : token.StartsWith("v3.", StringComparison.Ordinal) ? TokenStatus.WrongVersion
            : TokenStatus.BadSignature;
        Assert.Equal(expected, status);
    }

    [Fact]
    public void Pae_SpecificationExamples_MatchTheSpecification()
    {
        Assert.Equal("0000000000000000", Convert.ToHexStringLower(PasetoV4Public.Pae()));
        Assert.Equal("01000000000000000000000000000000", Convert.ToHexStringLower(PasetoV4Public.Pae(Array.Empty<byte>())));
        Assert.Equal("020000000000000000000000000000000000000000000000", Convert.ToHexStringLower(PasetoV4Public.Pae(Array.Empty<byte>(), Array.Empty<byte>())));
        Assert.Equal("0100000000000000070000000000000050617261676f6e", Convert.ToHexStringLower(PasetoV4Public.Pae("Paragon"u8.ToArray())));
    }

    private static TheoryData<string> VectorNames(string prefix)
    {
        using var doc = TestData.Json("paseto", "v4.json");
        var data = new TheoryData<string>();
        foreach (var t in doc.RootElement.GetProperty("tests").EnumerateArray())
        {
            var name = t.GetProperty("name").GetString()!;
            if (name.StartsWith(prefix, StringComparison.Ordinal))
            {
                data.Add(name);
            }
        }

        return data;
    }

    private static JsonElement Vector(string name)
    {
        using var doc = TestData.Json("paseto", "v4.json");
        foreach (var t in doc.RootElement.GetProperty("tests").EnumerateArray())
        {
            if (t.GetProperty("name").GetString() == name)
            {
                return t.Clone();
            }
        }

        throw new KeyNotFoundException(name);
    }

    private static byte[] Utf8(JsonElement v, string property) =>
        v.TryGetProperty(property, out var p) && p.ValueKind == JsonValueKind.String ? Encoding.UTF8.GetBytes(p.GetString()!) : [];
}
