using System.Text.Json;
using CsCheck;
using DeCloud.Core.Model;
using DeCloud.Core.Security.Siwe;

namespace DeCloud.Core.Tests.Security;

public sealed class SiweMessageTests
{
    public static TheoryData<string> PositiveNames() => Names("parsing_positive.json");

    public static TheoryData<string> NegativeNames() => Names("parsing_negative.json");

    [Theory]
    [MemberData(nameof(PositiveNames))]
    public void TryParse_PublishedPositiveVector_YieldsTheFieldsAndRoundTrips(string name)
    {
        var v = Vector("parsing_positive.json", name);
        var text = v.GetProperty("message").GetString()!;
        var f = v.GetProperty("fields");

        Assert.True(SiweMessage.TryParse(text, out var m, out var error), error);

        Assert.Equal(f.GetProperty("domain").GetString(), m.Domain);
        Assert.Equal(f.GetProperty("address").GetString(), m.Address.ToChecksumHex());
        Assert.Equal(f.GetProperty("uri").GetString(), m.Uri);
        Assert.Equal(f.GetProperty("version").GetString(), m.Version);
        Assert.Equal(f.GetProperty("chainId").GetInt64(), m.ChainId);
        Assert.Equal(f.GetProperty("nonce").GetString(), m.Nonce);
        Assert.Equal(DateTimeOffset.Parse(f.GetProperty("issuedAt").GetString()!, System.Globalization.CultureInfo.InvariantCulture), m.IssuedAt);
        Assert.Equal(f.TryGetProperty("statement", out var st) ? st.GetString() : null, m.Statement);
        Assert.Equal(f.TryGetProperty("scheme", out var sc) ? sc.GetString() : null, m.Scheme);
        var resources = f.TryGetProperty("resources", out var rs) ? rs.EnumerateArray().Select(r => r.GetString()!).ToArray() : [];
        Assert.Equal(resources, m.Resources);
        Assert.Equal(text, m.Build());
    }

    [Theory]
    [MemberData(nameof(NegativeNames))]
    public void TryParse_PublishedNegativeVector_IsRefusedWithAReason(string name)
    {
        var text = Vector("parsing_negative.json", name).GetString()!;

        Assert.False(SiweMessage.TryParse(text, out var m, out var error));

        Assert.Null(m);
        Assert.False(string.IsNullOrWhiteSpace(error));
        var ex = Assert.Throws<DeCloudValidationException>(() => SiweMessage.Parse(text));
        Assert.Equal("siweMessage", ex.Field);
    }

    [Fact]
    public void TryParse_EveryTruncationOfAValidMessage_IsRefusedWithoutThrowing()
    {
        var text = ValidMessage().Build();
        for (var n = 0; n < text.Length; n++)
        {
            var prefix = text[..n];
            // A cut right after a complete optional field would still be valid; none is optional after Issued At here.
            Assert.False(SiweMessage.TryParse(prefix, out _, out var error), $"prefix of {n} chars parsed");
            Assert.NotEmpty(error);
        }

        Assert.True(SiweMessage.TryParse(text, out _, out _));
    }

    [Fact]
    public void TryParse_TrailingNewlineOrCarriageReturns_AreRefused()
    {
        var text = ValidMessage().Build();

        Assert.False(SiweMessage.TryParse(text + "\n", out _, out var e1));
        Assert.Contains("unexpected line", e1);
        Assert.False(SiweMessage.TryParse(text.Replace("\n", "\r\n"), out _, out var e2));
        Assert.Contains("CR", e2);
    }

    [Fact]
    public void TryParse_OversizedMessage_IsRefusedUnparsed()
    {
        var text = ValidMessage().Build() + new string('a', SiweMessage.MaxLength);

        Assert.False(SiweMessage.TryParse(text, out _, out var error));
        Assert.Contains("at most", error);
    }

    [Fact]
    public void TryParse_RandomJunkOfEveryLength_NeverThrows()
    {
        Gen.String[Gen.Char.AlphaNumeric, 0, 600].Select(Gen.Int[0, 2]).Sample(t =>
        {
            var (junk, mode) = t;
            var text = mode switch
            {
                0 => junk,
                1 => "example.com wants you to sign in with your Ethereum account:\n" + junk,
                _ => ValidMessage().Build().Insert(Math.Min(junk.Length, 200), junk),
            };
            _ = SiweMessage.TryParse(text, out _, out _);
        }, iter: 2000);
    }

    [Fact]
    public void TryParse_SingleCharacterChange_NeverThrows()
    {
        var text = ValidMessage().Build();
        Gen.Int[0, text.Length - 1].Select(Gen.Char).Sample(t =>
        {
            var chars = text.ToCharArray();
            chars[t.Item1] = t.Item2;
            _ = SiweMessage.TryParse(new string(chars), out _, out _);
        }, iter: 3000);
    }

    [Fact]
    public void Build_AllOptionalFields_ParsesBackToTheSameValues()
    {
        var m = new SiweMessage
        {
            Scheme = "https",
            Domain = "app.decloud.example:8443",
            Address = WalletAddress.Parse("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"),
            Statement = "Sign in to DeCloud",
            Uri = "https://app.decloud.example:8443/login?x=1#y",
            ChainId = 137,
            Nonce = "abcdEFGH1234",
            IssuedAt = new DateTimeOffset(2026, 11, 25, 12, 0, 0, 123, TimeSpan.Zero),
            ExpirationTime = new DateTimeOffset(2026, 11, 25, 12, 10, 0, TimeSpan.Zero),
            NotBefore = new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero),
            RequestId = "req-1",
            Resources = ["urn:decloud:node:abc", "ipfs://Qme7ss3ARVgxv6rXqVPiikMJ8u2NLgmgszg13pYrDKEoiu"],
        };

        var text = m.Build();
        var back = SiweMessage.Parse(text);

        Assert.Contains("Issued At: 2026-11-25T12:00:00.123Z", text);
        Assert.Contains("Expiration Time: 2026-11-25T12:10:00Z", text);
        Assert.Equal(m.Scheme, back.Scheme);
        Assert.Equal(m.Domain, back.Domain);
        Assert.Equal(m.Address, back.Address);
        Assert.Equal(m.IssuedAt, back.IssuedAt);
        Assert.Equal(m.ExpirationTime, back.ExpirationTime);
        Assert.Equal(m.NotBefore, back.NotBefore);
        Assert.Equal(m.RequestId, back.RequestId);
        Assert.Equal(m.Resources, back.Resources);
        Assert.Equal(text, back.Build());
    }

    [Theory]
    [InlineData("Statement", "two\nlines")]
    [InlineData("Nonce", "short")]
    [InlineData("Uri", ":not_a_uri")]
    [InlineData("Domain", "#bad")]
    public void Build_FieldBreakingTheGrammar_ThrowsNamingTheField(string field, string value)
    {
        var m = ValidMessage();
        m = field switch
        {
            "Statement" => Copy(m, statement: value),
            "Nonce" => Copy(m, nonce: value),
            "Uri" => Copy(m, uri: value),
            _ => Copy(m, domain: value),
        };

        var ex = Assert.Throws<DeCloudValidationException>(() => m.Build());
        Assert.Equal(field, ex.Field);
    }

    internal static SiweMessage ValidMessage() => new()
    {
        Domain = "app.decloud.example",
        Address = WalletAddress.Parse("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"),
        Statement = "Sign in to DeCloud",
        Uri = "https://app.decloud.example/login",
        ChainId = 137,
        Nonce = "32891757abc",
        IssuedAt = new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero),
    };

    private static SiweMessage Copy(SiweMessage m, string? statement = null, string? nonce = null, string? uri = null, string? domain = null) => new()
    {
        Domain = domain ?? m.Domain,
        Address = m.Address,
        Statement = statement ?? m.Statement,
        Uri = uri ?? m.Uri,
        ChainId = m.ChainId,
        Nonce = nonce ?? m.Nonce,
        IssuedAt = m.IssuedAt,
    };

    private static TheoryData<string> Names(string file)
    {
        using var doc = TestData.Json("siwe", file);
        var data = new TheoryData<string>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            data.Add(p.Name);
        }

        return data;
    }

    private static JsonElement Vector(string file, string name)
    {
        using var doc = TestData.Json("siwe", file);
        return doc.RootElement.GetProperty(name).Clone();
    }
}
