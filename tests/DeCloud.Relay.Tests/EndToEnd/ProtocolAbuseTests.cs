using System.Buffers;
using System.Net;
using System.Net.Sockets;
using DeCloud.Relay.Protocol;
using DeCloud.Testing;

namespace DeCloud.Relay.Tests.EndToEnd;

public sealed class ProtocolAbuseTests
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Socket, List<byte>> Leftovers = new();

    private static async Task<(FrameHeader Header, byte[] Payload)?> ReadFrameAsync(Socket socket)
    {
        var buffer = Leftovers.GetOrCreateValue(socket);
        var chunk = new byte[4096];
        while (true)
        {
            var sequence = new ReadOnlySequence<byte>(buffer.ToArray());
            if (FrameDecoder.TryDecode(ref sequence, out var header, out var payload) == FrameDecodeStatus.Ok)
            {
                buffer.RemoveRange(0, FrameHeader.Size + header.Length);
                return (header, payload.ToArray());
            }

            int n;
            try
            {
                n = await socket.ReceiveAsync(chunk.AsMemory()).AsTask().Within();
            }
            catch (SocketException)
            {
                return null;
            }

            if (n == 0)
            {
                return null;
            }

            buffer.AddRange(chunk.AsSpan(0, n).ToArray());
        }
    }

    private static async Task<bool> ClosedAsync(Socket socket)
    {
        var buffer = new byte[65536];
        try
        {
            while (true)
            {
                if (await socket.ReceiveAsync(buffer.AsMemory()).AsTask().Within() == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
    }

    private static byte[] Frame(FrameType type, uint streamId, ReadOnlySpan<byte> payload, byte version = FrameHeader.CurrentVersion)
    {
        var bytes = new byte[FrameHeader.Size + payload.Length];
        new FrameHeader(version, type, 0, streamId, payload.Length).Write(bytes);
        payload.CopyTo(bytes.AsSpan(FrameHeader.Size));
        return bytes;
    }

    private static async Task<Socket> AuthenticatedRawAsync(RelayHarness harness, string nodeId)
    {
        var socket = await Net.ConnectAsync(harness.ControlPort);
        var hello = HelloMessage.Decode((await ReadFrameAsync(socket))!.Value.Payload)!;
        var proof = await new HmacChallengeCredentials(RelayHarness.Secret).CreateProofAsync(nodeId, hello.Challenge);
        await socket.SendAsync(Frame(FrameType.Auth, 0, new AuthMessage(nodeId, proof.ToArray()).Encode().Span));
        var result = AuthResultMessage.Decode((await ReadFrameAsync(socket))!.Value.Payload)!;
        Assert.True(result.Accepted);
        return socket;
    }

    [Fact]
    public async Task Garbage_OnControlPort_ErrorFrameThenCloseAndRelayKeepsServing()
    {
        await using var harness = await RelayHarness.StartAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync();
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();

        using var raw = await Net.ConnectAsync(harness.ControlPort);
        await raw.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var hello = await ReadFrameAsync(raw);
        Assert.Equal(FrameType.Hello, hello!.Value.Header.Type);
        var error = await ReadFrameAsync(raw);
        Assert.Equal(FrameType.Error, error!.Value.Header.Type);
        Assert.Equal(WireError.UnsupportedVersion, ErrorMessage.Decode(error.Value.Payload)!.Code);
        Assert.True(await ClosedAsync(raw));
        await Net.EchoWorksAsync(mapping.PublicPort);
    }

    [Fact]
    public async Task NewerVersion_Refused_WithUnsupportedVersionNamingOurs()
    {
        await using var harness = await RelayHarness.StartAsync();
        using var raw = await Net.ConnectAsync(harness.ControlPort);
        _ = await ReadFrameAsync(raw);
        await raw.SendAsync(Frame(FrameType.Auth, 0, new AuthMessage("n", new byte[32]).Encode().Span, version: 2));
        var error = ErrorMessage.Decode((await ReadFrameAsync(raw))!.Value.Payload)!;
        Assert.Equal(WireError.UnsupportedVersion, error.Code);
        Assert.Contains("version 2", error.Message, StringComparison.Ordinal);
        Assert.True(await ClosedAsync(raw));
    }

    [Fact]
    public async Task SilentConnection_ClosedAfterTheHandshakeTimeout()
    {
        await using var harness = await RelayHarness.StartAsync(o => o.HandshakeTimeout = TimeSpan.FromMilliseconds(300));
        using var raw = await Net.ConnectAsync(harness.ControlPort);
        Assert.Equal(FrameType.Hello, (await ReadFrameAsync(raw))!.Value.Header.Type);
        Assert.True(await ClosedAsync(raw));
    }

    [Theory]
    [InlineData(99, 0)]
    [InlineData((int)FrameType.Data, FrameHeader.MaxPayload + 1)]
    public async Task BadFrame_AfterAuthentication_OnlyThatTunnelCloses(int type, int length)
    {
        await using var harness = await RelayHarness.StartAsync();
        await using var echo = new TcpEcho();
        var client = await harness.StartClientAsync("good");
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", echo.Port)).Within();

        using var raw = await AuthenticatedRawAsync(harness, "evil");
        var header = new byte[FrameHeader.Size];
        new FrameHeader(FrameHeader.CurrentVersion, (FrameType)type, 0, 1, length).Write(header);
        await raw.SendAsync(header);
        Assert.True(await ClosedAsync(raw));
        Assert.True(client.IsConnected);
        await Net.EchoWorksAsync(mapping.PublicPort);
    }

    [Fact]
    public async Task MalformedMapRequest_TunnelClosedStoredMappingsIntact()
    {
        await using var harness = await RelayHarness.StartAsync();
        var client = await harness.StartClientAsync("evil");
        var mapping = await client.AddMappingAsync(new RelayMappingRequest(RelayProtocol.Tcp, "127.0.0.1", 7)).Within();
        using var raw = await AuthenticatedRawAsync(harness, "evil");
        await raw.SendAsync(Frame(FrameType.MapRequest, 0, [1, 2, 3]));
        Assert.True(await ClosedAsync(raw));
        var stored = Assert.Single(harness.Server.GetMappings("evil"));
        Assert.Equal(mapping.PublicPort, stored.PublicPort);
    }
}
