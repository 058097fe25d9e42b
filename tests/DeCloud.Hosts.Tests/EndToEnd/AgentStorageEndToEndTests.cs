using DeCloud.Agent.Control;
using DeCloud.Agent.Storage;
using DeCloud.Core.Model;
using DeCloud.Protocol.V1;
using DeCloud.Storage;
using DeCloud.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DeCloud.Hosts.Tests.EndToEnd;

/// <summary>The agent's storage commands through DeCloud.Storage on loop-mounted Btrfs filesystems (prefix dca9).</summary>
public sealed class AgentStorageEndToEndTests
{
    [Fact]
    public async Task TakeBackup_BtrfsRoot_InProgressThenSucceededAndBackupOnTarget()
    {
        await using var fsA = await NewFilesystemAsync();
        await using var fsB = await NewFilesystemAsync();
        var dir = Directory.CreateTempSubdirectory("dch-storage-").FullName;
        try
        {
            var volumesRoot = fsA.NewRoot("vols");
            var backupRoot = fsB.NewRoot("backups");
            var vmId = VmId.New().ToString();
            var volumes = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = volumesRoot });
            await volumes.CreateAsync("vm-data").Within(TimeBox.RealPart);
            await File.WriteAllTextAsync(Path.Combine(volumes.GetPath("vm-data"), "hello.txt"), "backed up");

            using var host = await StartAgentAsync(dir, "--Agent:StorageRoot=" + volumesRoot, "--Agent:BackupRoot=" + backupRoot);
            var executor = host.Services.GetRequiredService<CommandExecutor>();
            var outbox = host.Services.GetRequiredService<AckOutbox>();

            var backup = new Command { CommandId = "b1", Sequence = 1, TakeBackup = new TakeBackup { VmId = vmId, Volume = "vm-data", BackupId = "bk-1" } };
            Assert.Equal(AckStatus.InProgress, (await executor.ExecuteAsync(backup, default).Within()).Status);
            var final = await NextFinalAsync(outbox, "b1");
            Assert.True(final.Status == AckStatus.Succeeded, final.Error);
            Assert.Equal("bk-1", final.Result["backup_id"]);
            var snapshot = final.Result["snapshot"];
            Assert.StartsWith("vm-data@backup.", snapshot, StringComparison.Ordinal);

            var target = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = backupRoot });
            Assert.Contains(await target.ListAsync().Within(TimeBox.RealPart), v => v.Name == snapshot);
            Assert.Equal("backed up", await File.ReadAllTextAsync(Path.Combine(target.GetPath(snapshot), "hello.txt")));

            // The re-sent command gets the final ack, not a second backup.
            Assert.Equal(final, await executor.ExecuteAsync(backup, default).Within());

            // A volume that does not exist: accepted, then FAILED with the reason; a bad name: REJECTED.
            var missing = new Command { CommandId = "b2", Sequence = 2, TakeBackup = new TakeBackup { VmId = vmId, Volume = "nope", BackupId = "bk-2" } };
            Assert.Equal(AckStatus.InProgress, (await executor.ExecuteAsync(missing, default).Within()).Status);
            var failed = await NextFinalAsync(outbox, "b2");
            Assert.Equal(AckStatus.Failed, failed.Status);
            Assert.Contains("nope", failed.Error, StringComparison.Ordinal);
            var badName = await executor.ExecuteAsync(new Command { CommandId = "b3", Sequence = 3, TakeBackup = new TakeBackup { VmId = vmId, Volume = "../etc" } }, default).Within();
            Assert.Equal(AckStatus.Rejected, badName.Status);
            await host.StopAsync().Within();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task StorageCommands_NoBtrfsRoot_RejectedWithReason()
    {
        var dir = Directory.CreateTempSubdirectory("dch-nostorage-").FullName;
        try
        {
            using var host = await StartAgentAsync(dir);
            var executor = host.Services.GetRequiredService<CommandExecutor>();
            var vmId = VmId.New().ToString();
            var backup = await executor.ExecuteAsync(new Command { CommandId = "n1", Sequence = 1, TakeBackup = new TakeBackup { VmId = vmId, Volume = "v" } }, default).Within();
            var move = await executor.ExecuteAsync(new Command { CommandId = "n2", Sequence = 2, StartVolumeMove = new StartVolumeMove { VmId = vmId, Volume = "v", TargetEndpoint = "127.0.0.1:1" } }, default).Within();
            foreach (var ack in new[] { backup, move })
            {
                Assert.Equal(AckStatus.Rejected, ack.Status);
                Assert.Contains("StorageRoot", ack.Error, StringComparison.Ordinal);
            }

            await host.StopAsync().Within();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task StartVolumeMove_BetweenTwoAgents_MovedAndVerifiedThenUnreachableTargetFails()
    {
        await using var fsA = await NewFilesystemAsync();
        await using var fsB = await NewFilesystemAsync();
        var srcDir = Directory.CreateTempSubdirectory("dch-move-src-").FullName;
        var dstDir = Directory.CreateTempSubdirectory("dch-move-dst-").FullName;
        try
        {
            var srcRoot = fsA.NewRoot("src");
            var dstRoot = fsB.NewRoot("dst");
            var source = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = srcRoot });
            var destination = new BtrfsVolumes(new BtrfsVolumesOptions { RootPath = dstRoot });
            await source.CreateAsync("vm-move").Within(TimeBox.RealPart);
            await source.CreateAsync("vm-stay").Within(TimeBox.RealPart);
            var payload = new byte[3 << 20];
            new Random(9).NextBytes(payload);
            await File.WriteAllBytesAsync(Path.Combine(source.GetPath("vm-move"), "disk.bin"), payload);

            using var dst = await StartAgentAsync(dstDir, "--Agent:StorageRoot=" + dstRoot, "--Agent:MoveListenPort=0");
            var endpoint = dst.Services.GetRequiredService<AgentStorage>().ReceiverEndpoint;
            Assert.NotNull(endpoint);
            using var src = await StartAgentAsync(srcDir, "--Agent:StorageRoot=" + srcRoot);
            var executor = src.Services.GetRequiredService<CommandExecutor>();
            var outbox = src.Services.GetRequiredService<AckOutbox>();
            var vmId = VmId.New().ToString();
            using var moveTokens = AgentAuthMoveEndToEndTests.MoveTokens.For(src, dst);

            var move = new Command { CommandId = "m1", Sequence = 1, StartVolumeMove = new StartVolumeMove { VmId = vmId, Volume = "vm-move", TargetEndpoint = endpoint, MoveId = "mv-1", MoveToken = moveTokens.Issue(vmId, "vm-move", "mv-1") } };
            Assert.Equal(AckStatus.InProgress, (await executor.ExecuteAsync(move, default).Within()).Status);
            var steps = new List<string>();
            var final = await NextFinalAsync(outbox, "m1", steps);
            Assert.True(final.Status == AckStatus.Succeeded, final.Error);
            Assert.Contains("FullSend", steps);
            Assert.Contains("Verify", steps);
            Assert.Equal(payload, await File.ReadAllBytesAsync(Path.Combine(destination.GetPath("vm-move"), "disk.bin")));
            Assert.Null(await source.FindAsync("vm-move").Within(TimeBox.RealPart));

            // A destination that does not answer: FAILED with the reason, the source volume untouched.
            var closed = HostProcess.FreePort();
            var unreachable = new Command { CommandId = "m2", Sequence = 2, StartVolumeMove = new StartVolumeMove { VmId = vmId, Volume = "vm-stay", TargetEndpoint = $"127.0.0.1:{closed}", MoveId = "mv-2", MoveToken = moveTokens.Issue(vmId, "vm-stay", "mv-2") } };
            Assert.Equal(AckStatus.InProgress, (await executor.ExecuteAsync(unreachable, default).Within()).Status);
            var failed = await NextFinalAsync(outbox, "m2");
            Assert.Equal(AckStatus.Failed, failed.Status);
            Assert.False(string.IsNullOrEmpty(failed.Error));
            Assert.NotNull(await source.FindAsync("vm-stay").Within(TimeBox.RealPart));
            var badEndpoint = await executor.ExecuteAsync(new Command { CommandId = "m3", Sequence = 3, StartVolumeMove = new StartVolumeMove { VmId = vmId, Volume = "vm-stay", TargetEndpoint = "nowhere" } }, default).Within();
            Assert.Equal(AckStatus.Rejected, badEndpoint.Status);

            await src.StopAsync().Within();
            await dst.StopAsync().Within();
        }
        finally
        {
            Directory.Delete(srcDir, recursive: true);
            Directory.Delete(dstDir, recursive: true);
        }
    }

    /// <summary>A loop-mounted Btrfs filesystem named with this suite's prefix (dca9-), after sweeping crashed runs' leftovers.</summary>
    private static async Task<LoopBtrfsFilesystem> NewFilesystemAsync()
    {
        LoopBtrfsFilesystem.Require();
        await LoopBtrfsFilesystem.CleanLeftoversAsync("dca9-");
        return await LoopBtrfsFilesystem.CreateAsync("dca9-");
    }

    internal static async Task<IHost> StartAgentAsync(string dir, params string[] extra)
    {
        var host = AgentTierEndToEndTests.AgentHost(dir, "http://127.0.0.1:1", ["--Agent:Hypervisor=simulated", "--Agent:PortForwarding=userspace", .. extra]);
        await host.StartAsync().Within();
        await host.Services.GetRequiredService<Agent.Control.AgentStatus>().Reconciled.Within(TimeSpan.FromMinutes(1), "the agent's start-up reconciliation");
        return host;
    }

    /// <summary>Reads the outbox until <paramref name="commandId"/>'s final ack, collecting the steps of its progress acks.</summary>
    internal static async Task<CommandAck> NextFinalAsync(AckOutbox outbox, string commandId, List<string>? steps = null)
    {
        while (true)
        {
            var ack = await outbox.Reader.ReadAsync().AsTask().Within(TimeBox.RealPart, $"the final ack of {commandId}");
            if (ack.CommandId != commandId)
            {
                continue;
            }

            if (ack.Status != AckStatus.InProgress)
            {
                return ack;
            }

            if (ack.Result.TryGetValue("step", out var step))
            {
                steps?.Add(step);
            }
        }
    }
}
