using CsCheck;
using DeCloud.Core.Security.Siwe;

namespace DeCloud.Core.Tests.Security;

public sealed class PersonalSignTests
{
    private const string Text = "DeCloud agent registration v2\nnode: 0xabc\nnonce: 1234";

    [Fact]
    public void TryRecoverSigner_WalletSignature_RecoversTheWallet()
    {
        var wallet = new TestWallet();
        Assert.True(PersonalSign.TryRecoverSigner(Text, wallet.Sign(Text), out var signer, out var error), error);
        Assert.Equal(wallet.Address, signer);
    }

    [Fact]
    public void TryRecoverSigner_OtherMessage_RecoversSomeOtherWalletNotAnError()
    {
        var wallet = new TestWallet();
        Assert.True(PersonalSign.TryRecoverSigner(Text + "!", wallet.Sign(Text), out var signer, out _));
        Assert.NotEqual(wallet.Address, signer);
    }

    [Theory]
    [InlineData((byte)0)]
    [InlineData((byte)1)]
    [InlineData((byte)5)]
    [InlineData((byte)29)]
    [InlineData((byte)255)]
    public void TryRecoverSigner_RecoveryByteOutOfRange_RefusedWithReason(byte v)
    {
        var signature = TestWallet.WithV(new TestWallet().Sign(Text), v);
        Assert.False(PersonalSign.TryRecoverSigner(Text, signature, out _, out var error));
        Assert.Contains("recovery byte", error, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRecoverSigner_HighSTwin_Refused()
    {
        var twin = TestWallet.HighSTwin(new TestWallet().Sign(Text));
        Assert.False(PersonalSign.TryRecoverSigner(Text, twin, out _, out var error));
        Assert.Contains("low-S", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("0x")]
    [InlineData("0x1234")]
    [InlineData("zz")]
    public void TryRecoverSigner_NotA65ByteHexSignature_Refused(string? signature)
    {
        Assert.False(PersonalSign.TryRecoverSigner(Text, signature, out _, out var error));
        Assert.Contains("65 bytes", error, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRecoverSigner_RandomAndTruncatedInput_NeverThrows()
    {
        var valid = new TestWallet().Sign(Text);
        Gen.Select(Gen.Byte.Array[0, 80], Gen.Int[0, valid.Length]).Sample((bytes, cut) =>
        {
            PersonalSign.TryRecoverSigner(Text, "0x" + Convert.ToHexStringLower(bytes), out _, out _);
            PersonalSign.TryRecoverSigner(Text, valid[..cut], out _, out _);
        }, iter: 2000);
    }
}
