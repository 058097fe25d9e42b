using CsCheck;
using DeCloud.Relay.Protocol;

namespace DeCloud.Relay.Tests.Protocol;

public sealed class ResetMessageTests
{
    [Fact]
    public void Reset_RoundTrip_PreservesCodeAndReason()
    {
        var message = new ResetMessage(WireError.SocketFailed, "the public client's connection failed while reading: Connection reset by peer");
        Assert.Equal(message, ResetMessage.Decode(message.Encode().Span));
    }

    [Fact]
    public void Reset_LongReason_IsCutToTheLimit()
    {
        var decoded = ResetMessage.Decode(new ResetMessage(WireError.StreamAborted, new string('x', 5000)).Encode().Span);
        Assert.Equal(ResetMessage.MaxReasonLength, decoded.Reason.Length);
    }

    [Fact]
    public void Reset_BareCode_DecodesWithoutAReason()
    {
        var decoded = ResetMessage.Decode([0, (byte)WireError.ConnectFailed]);
        Assert.Equal(new ResetMessage(WireError.ConnectFailed, "no reason given"), decoded);
    }

    [Fact]
    public void Reset_TruncatedOrTrailingBytes_StillResetsWithAMalformedReason()
    {
        Assert.Equal(new ResetMessage(WireError.StreamAborted, "malformed reset frame"), ResetMessage.Decode([7]));
        var encoded = new ResetMessage(WireError.SocketFailed, "why").Encode().ToArray();
        Assert.Equal("malformed reset reason", ResetMessage.Decode(encoded.AsSpan(0, encoded.Length - 1)).Reason);
        Assert.Equal("malformed reset reason", ResetMessage.Decode([.. encoded, 0]).Reason);
    }

    [Fact]
    public void Reset_RandomBytes_NeverThrowsAndKeepsTheReasonBounded()
    {
        Gen.Byte.Array[0, 600].Sample(bytes =>
        {
            var decoded = ResetMessage.Decode(bytes);
            Assert.True(decoded.Reason.Length <= ResetMessage.MaxReasonLength);
        });
    }
}
