using System.Net.Sockets;
using DeCloud.Relay.Forwarding;
using DeCloud.Relay.Server;
using DeCloud.Relay.Tunnel;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Relay.Tests.Server;

public sealed class DataChannelRegistryTests : IAsyncDisposable
{
    private readonly RelayServer _server = new(new RelayServerOptions(), new HmacChallengeAuthenticator(new byte[32]));
    private readonly List<TunnelConnection> _tunnels = [];

    public async ValueTask DisposeAsync()
    {
        foreach (var tunnel in _tunnels)
        {
            await tunnel.DisposeAsync();
        }

        await _server.DisposeAsync();
    }

    private ServerSession CreateSession()
    {
        var tunnel = new TunnelConnection(new MemoryStream(), new TunnelSettings(), isServer: true, TimeProvider.System, NullLogger.Instance, "test");
        _tunnels.Add(tunnel);
        return new ServerSession(_server, tunnel, "node", null, TimeSpan.FromSeconds(1), NullLogger.Instance, new DataChannelRegistry(), dedicated: true);
    }

    private static RawConnection Connection() => new(new Socket(SocketType.Stream, ProtocolType.Tcp), Stream.Null);

    private static (DataChannelRegistry Registry, PendingDataChannel Channel) CreateSut(ServerSession session)
    {
        var registry = new DataChannelRegistry();
        return (registry, registry.Register(session));
    }

    [Fact]
    public async Task Claim_RightNonce_HandsTheConnectionToTheWaitingStream()
    {
        var (registry, channel) = CreateSut(CreateSession());
        var connection = Connection();
        Assert.Equal(DataChannelClaim.Claimed, registry.Claim(channel.Id, channel.Nonce, connection));
        Assert.Same(connection, await channel.Connected);
        Assert.Equal(0, registry.Count);
    }

    [Fact]
    public void Claim_WrongNonce_RefusedAndTheChannelKeepsWaiting()
    {
        var (registry, channel) = CreateSut(CreateSession());
        var wrong = (byte[])channel.Nonce.Clone();
        wrong[^1] ^= 1;
        Assert.Equal(DataChannelClaim.WrongNonce, registry.Claim(channel.Id, wrong, Connection()));
        Assert.Equal(DataChannelClaim.WrongNonce, registry.Claim(channel.Id, wrong.AsSpan(0, 16), Connection()));
        Assert.False(channel.Connected.IsCompleted);
        Assert.Equal(DataChannelClaim.Claimed, registry.Claim(channel.Id, channel.Nonce, Connection()));
    }

    [Fact]
    public void Claim_Replayed_SecondUseIsUnknown()
    {
        var (registry, channel) = CreateSut(CreateSession());
        Assert.Equal(DataChannelClaim.Claimed, registry.Claim(channel.Id, channel.Nonce, Connection()));
        Assert.Equal(DataChannelClaim.Unknown, registry.Claim(channel.Id, channel.Nonce, Connection()));
    }

    [Fact]
    public void Claim_AfterTheStreamStoppedWaiting_Unknown()
    {
        var (registry, channel) = CreateSut(CreateSession());
        channel.Abandon();
        registry.Remove(channel);
        Assert.Equal(DataChannelClaim.Unknown, registry.Claim(channel.Id, channel.Nonce, Connection()));
        Assert.True(channel.Connected.IsCanceled);
    }

    [Fact]
    public void Claim_AbandonedButNotYetRemoved_UnknownAndTheConnectionIsNotHandedOver()
    {
        var (registry, channel) = CreateSut(CreateSession());
        channel.Abandon();
        Assert.Equal(DataChannelClaim.Unknown, registry.Claim(channel.Id, channel.Nonce, Connection()));
    }

    [Fact]
    public void Claim_SessionClosed_RefusedAsSessionClosed()
    {
        var session = CreateSession();
        var (registry, channel) = CreateSut(session);
        session.Tunnel.Abort("test");
        Assert.Equal(DataChannelClaim.SessionClosed, registry.Claim(channel.Id, channel.Nonce, Connection()));
    }

    [Fact]
    public async Task Refuse_ByTheSessionThatAsked_FailsTheStreamOtherSessionsCannot()
    {
        var owner = CreateSession();
        var (registry, channel) = CreateSut(owner);
        Assert.False(registry.Refuse(channel.Id, CreateSession(), "not yours"));
        Assert.False(channel.Connected.IsCompleted);
        Assert.True(registry.Refuse(channel.Id, owner, "target refused"));
        var error = await Assert.ThrowsAsync<RelayException>(() => channel.Connected);
        Assert.Contains("target refused", error.Message, StringComparison.Ordinal);
        Assert.Equal(DataChannelClaim.Unknown, registry.Claim(channel.Id, channel.Nonce, Connection()));
    }

    [Fact]
    public void Register_ManyChannels_UniqueIdsAndNonces()
    {
        var session = CreateSession();
        var registry = new DataChannelRegistry();
        var channels = Enumerable.Range(0, 1000).Select(_ => registry.Register(session)).ToList();
        Assert.Equal(1000, channels.Select(c => c.Id).Distinct().Count());
        Assert.Equal(1000, channels.Select(c => Convert.ToHexString(c.Nonce)).Distinct().Count());
    }
}
