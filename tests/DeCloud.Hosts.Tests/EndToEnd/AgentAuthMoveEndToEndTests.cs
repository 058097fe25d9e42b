using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using DeCloud.Agent.Control;
using DeCloud.Agent.Storage;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Protocol.V1;
using DeCloud.Storage;
using DeCloud.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>The agent's volume receiver refuses every sender without the orchestrator's move token, before DeCloud.Storage sees a byte (loop Btrfs, prefix dh9a).</summary>
public sealed class AgentAuthMoveEndToEndTests
{
    [Fact]
    public async Task VolumeReceiver_WithoutAValidMoveToken_RefusesAndLeavesNothingThenAcceptsTheRightOne()
    {
        LoopBtrfsFilesystem.Require();
        await LoopBtrfsFilesystem.CleanLeftoversAsync("dh9a-");
        await using var fsA = await LoopBtrfsFilesystem.CreateAsync("dh9a-");
        await using var fsB = await LoopBtrfsFilesystem.CreateAsync("dh9a-");
        var srcDir = Directory.CreateTempSubdirectory("dh9a-move-src-").FullName;
        var dstDir = Directory.CreateTempSubdirectory("dh9a-move-dst-").FullName;
        try
        {
            var srcRoot = fsA.NewRoot("src");
            var dstRoot = fsB.NewRoot("dst");
            var source = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = srcRoot });
            var destination = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = dstRoot });
            await source.CreateAsync("vm-data").Within(TimeBox.RealPart);
            await File.WriteAllTextAsync(Path.Combine(source.GetPath("vm-data"), "disk.img"), "the VM's data");

            using var dst = await AgentStorageEndToEndTests.StartAgentAsync(dstDir, "--Agent:StorageRoot=" + dstRoot, "--Agent:MoveListenPort=0");
            var endpoint = dst.Services.GetRequiredService<AgentStorage>().ReceiverEndpoint!;
            using var src = await AgentStorageEndToEndTests.StartAgentAsync(srcDir, "--Agent:StorageRoot=" + srcRoot);
            var executor = src.Services.GetRequiredService<CommandExecutor>();
            var outbox = src.Services.GetRequiredService<AckOutbox>();
            using var tokens = MoveTokens.For(src, dst);
            var vm = VmId.New().ToString();
            var sequence = 0UL;

            async Task<CommandAck> MoveAsync(string token, string moveId)
            {
                var id = "mv-cmd-" + ++sequence;
                var command = new Command
                {
                    CommandId = id,
                    Sequence = sequence,
                    StartVolumeMove = new StartVolumeMove { VmId = vm, Volume = "vm-data", TargetEndpoint = endpoint, MoveId = moveId, MoveToken = token },
                };
                var first = await executor.ExecuteAsync(command, default).Within();
                return first.Status == AckStatus.InProgress ? await AgentStorageEndToEndTests.NextFinalAsync(outbox, id) : first;
            }

            async Task AssertNothingReceivedAsync()
            {
                Assert.Empty(await destination.ListAsync().Within(TimeBox.RealPart));
                var staging = Path.Combine(dstRoot, ".staging");
                Assert.True(!Directory.Exists(staging) || !Directory.EnumerateFileSystemEntries(staging).Any(), "staging is empty");
                Assert.NotNull(await source.FindAsync("vm-data").Within(TimeBox.RealPart));
            }

            // A token for another destination, an expired one, one from a stranger's key, one for another volume: FAILED with the reason.
            var otherNode = NodeId.FromMachine("dh9a-elsewhere", WalletAddress.Parse("0x00000000000000000000000000000000000000cc")).Value;
            var wrongAudience = await MoveAsync(tokens.Issue(vm, "vm-data", "mv-1", destination: otherNode), "mv-1");
            Assert.Equal(AckStatus.Failed, wrongAudience.Status);
            Assert.Contains("WrongAudience", wrongAudience.Error, StringComparison.Ordinal);
            var expired = await MoveAsync(tokens.Issue(vm, "vm-data", "mv-2", issuedAgo: TimeSpan.FromHours(2)), "mv-2");
            Assert.Contains("Expired", expired.Error, StringComparison.Ordinal);
            using (var stranger = new TokenKeyRing())
            {
                var foreign = new TokenIssuer(stranger).IssueVolumeMoveToken(new VolumeMoveTokenRequest(tokens.Source, tokens.Destination, VmId.Parse(vm, null), "vm-data", "mv-3")).Token;
                Assert.Contains("UnknownKey", (await MoveAsync(foreign, "mv-3")).Error, StringComparison.Ordinal);
            }

            var otherVolume = await MoveAsync(tokens.Issue(vm, "vm-other", "mv-4"), "mv-4");
            Assert.Contains("NotGranted", otherVolume.Error, StringComparison.Ordinal);
            var missing = await executor.ExecuteAsync(new Command { CommandId = "no-token", Sequence = ++sequence, StartVolumeMove = new StartVolumeMove { VmId = vm, Volume = "vm-data", TargetEndpoint = endpoint, MoveId = "mv-5" } }, default).Within();
            Assert.Equal(AckStatus.Rejected, missing.Status);
            Assert.Contains("move_token", missing.Error, StringComparison.Ordinal);

            // Anyone who just reaches the port: a raw btrfs-like stream, or a preamble with garbage for a token.
            Assert.Contains("DCMT", await RawAsync(endpoint, Encoding.ASCII.GetBytes("btrfs-stream\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")), StringComparison.Ordinal);
            Assert.Contains("Malformed", await RawAsync(endpoint, MovePreamble.Encode(new MoveTicket("not-a-token", vm, "vm-data", "mv-6"))), StringComparison.Ordinal);
            await AssertNothingReceivedAsync();

            // The orchestrator's token for this destination, VM, volume and move: the volume moves, and the token is spent.
            var token = tokens.Issue(vm, "vm-data", "mv-7");
            var moved = await MoveAsync(token, "mv-7");
            Assert.True(moved.Status == AckStatus.Succeeded, moved.Error);
            Assert.Equal("the VM's data", await File.ReadAllTextAsync(Path.Combine(destination.GetPath("vm-data"), "disk.img")));
            Assert.Null(await source.FindAsync("vm-data").Within(TimeBox.RealPart));

            await src.StopAsync().Within();
            await dst.StopAsync().Within();
        }
        finally
        {
            Directory.Delete(srcDir, recursive: true);
            Directory.Delete(dstDir, recursive: true);
        }
    }

    /// <summary>Sends <paramref name="bytes"/> to the receiver and returns its refusal; asserts it then closes the connection.</summary>
    private static async Task<string> RawAsync(string endpoint, byte[] bytes)
    {
        AgentStorage.TryParseEndpoint(endpoint, out var host, out var port);
        using var client = new TcpClient();
        await client.ConnectAsync(host, port).Within();
        var stream = client.GetStream();
        await stream.WriteAsync(bytes).AsTask().Within();
        var head = new byte[3];
        await stream.ReadExactlyAsync(head).AsTask().Within();
        Assert.Equal(1, head[0]);
        var reason = new byte[BinaryPrimitives.ReadUInt16BigEndian(head.AsSpan(1))];
        await stream.ReadExactlyAsync(reason).AsTask().Within();
        Assert.Equal(0, await stream.ReadAsync(new byte[1]).AsTask().Within());
        return Encoding.UTF8.GetString(reason);
    }

    /// <summary>An orchestrator key ring standing in for the orchestrator: the destination agent trusts its public keys.</summary>
    internal sealed class MoveTokens : IDisposable
    {
        private readonly TokenKeyRing _ring = new();

        private MoveTokens(NodeId source, NodeId destination)
        {
            Source = source;
            Destination = destination.Value;
        }

        public NodeId Source { get; }

        public string Destination { get; }

        public static MoveTokens For(IHost source, IHost destination)
        {
            var tokens = new MoveTokens(source.Services.GetRequiredService<AgentIdentity>().NodeId, destination.Services.GetRequiredService<AgentIdentity>().NodeId);
            destination.Services.GetRequiredService<TokenVerificationKeys>().Update(tokens._ring.GetPublicKeySet());
            return tokens;
        }

        public string Issue(string vmId, string volume, string moveId, string? destination = null, TimeSpan? issuedAgo = null)
        {
            var issuer = new TokenIssuer(_ring, timeProvider: issuedAgo is { } ago ? new FakeTimeProvider(DateTimeOffset.UtcNow - ago) : null);
            return issuer.IssueVolumeMoveToken(new VolumeMoveTokenRequest(Source, destination ?? Destination, VmId.Parse(vmId, null), volume, moveId)).Token;
        }

        public void Dispose() => _ring.Dispose();
    }
}
