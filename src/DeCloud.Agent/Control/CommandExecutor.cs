using System.Globalization;
using DeCloud.Agent.Hypervisors;
using DeCloud.Agent.Ports;
using DeCloud.Agent.State;
using DeCloud.Protocol.V1;
using Microsoft.Extensions.Logging;

namespace DeCloud.Agent.Control;

/// <summary>
/// Executes orchestrator commands exactly once by id: a command already executed is answered with its
/// stored ack; a new one runs against the hypervisor and port forwarder, and its ack is stored in the
/// same transaction as the local state change.
/// </summary>
internal sealed class CommandExecutor(
    AgentState state,
    IHypervisor hypervisor,
    PublicPorts ports,
    Relaying.AgentRelay relay,
    Storage.AgentStorage storage,
    AgentIdentity identity,
    Microsoft.Extensions.Options.IOptions<AgentOptions> options,
    TimeProvider time,
    ILogger<CommandExecutor> logger) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    public void Dispose() => _gate.Dispose();

    public async Task<CommandAck> ExecuteAsync(Command command, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (state.FindAck(command.CommandId) is { } done)
            {
                Log.CommandReplayed(logger, command.CommandId, command.KindCase.ToString());
                return done;
            }

            var ack = new CommandAck { CommandId = command.CommandId, Sequence = command.Sequence, Status = AckStatus.Succeeded };
            Action<Microsoft.Data.Sqlite.SqliteConnection, Microsoft.Data.Sqlite.SqliteTransaction>? change = null;
            var now = time.GetUtcNow();
            try
            {
                change = await RunAsync(command, ack, now, cancellationToken).ConfigureAwait(false);
            }
            catch (HypervisorException ex)
            {
                ack.Status = AckStatus.Failed;
                ack.Error = ex.Message;
            }
            catch (ArgumentException ex)
            {
                ack.Status = AckStatus.Rejected;
                ack.Error = ex.Message;
            }
            catch (System.Net.Sockets.SocketException ex)
            {
                ack.Status = AckStatus.Failed;
                ack.Error = "port: " + ex.Message;
            }
            catch (Exception ex) when (ex is DeCloud.Relay.RelayException or InvalidOperationException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                ack.Status = AckStatus.Failed;
                ack.Error = "relay: " + ex.Message;
            }

            state.Complete(command, ack, ack.Status == AckStatus.Succeeded ? change : null, now);
            Log.CommandExecuted(logger, command.CommandId, command.KindCase.ToString(), ack.Status.ToString(), ack.Error);
            return ack;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<Action<Microsoft.Data.Sqlite.SqliteConnection, Microsoft.Data.Sqlite.SqliteTransaction>?> RunAsync(Command command, CommandAck ack, DateTimeOffset now, CancellationToken ct)
    {
        switch (command.KindCase)
        {
            case Command.KindOneofCase.CreateVm:
            {
                var spec = command.CreateVm;
                RequireVmId(spec.VmId);
                if (spec.Resources is null || spec.Resources.ComputePoints <= 0 || spec.Resources.MemoryMib <= 0)
                {
                    throw new ArgumentException("create_vm needs resources with positive compute points and memory.");
                }

                // Unknown tiers are rejected before anything is defined.
                _ = VmTiers.CpuShareOf(spec.QualityTier);
                _ = VmTiers.BandwidthOf(spec.BandwidthTier, spec.BandwidthBytesPerSecond);
                await hypervisor.CreateAsync(spec, spec.Start, ct).ConfigureAwait(false);
                return (c, tx) => AgentState.UpsertVm(c, tx, spec, spec.Start, now);
            }

            case Command.KindOneofCase.StartVm:
                RequireKnown(command.StartVm.VmId);
                await hypervisor.StartAsync(command.StartVm.VmId, ct).ConfigureAwait(false);
                return (c, tx) => AgentState.SetShouldRun(c, tx, command.StartVm.VmId, true);

            case Command.KindOneofCase.StopVm:
                RequireKnown(command.StopVm.VmId);
                await hypervisor.StopAsync(command.StopVm.VmId, command.StopVm.Force, ct).ConfigureAwait(false);
                return (c, tx) => AgentState.SetShouldRun(c, tx, command.StopVm.VmId, false);

            case Command.KindOneofCase.DeleteVm:
            {
                var id = command.DeleteVm.VmId;
                RequireVmId(id);
                foreach (var p in state.ListPorts())
                {
                    if (p.VmId == id)
                    {
                        await ports.CloseAsync(p.PublicPort, ct).ConfigureAwait(false);
                    }
                }

                await hypervisor.DeleteAsync(id, ct).ConfigureAwait(false);
                return (c, tx) => AgentState.DeleteVm(c, tx, id);
            }

            case Command.KindOneofCase.SetBandwidthTier:
            {
                var t = command.SetBandwidthTier;
                var vm = RequireKnown(t.VmId);
                var limit = VmTiers.BandwidthOf(t.BandwidthTier, t.BandwidthBytesPerSecond);
                await hypervisor.SetBandwidthAsync(t.VmId, limit, ct).ConfigureAwait(false);
                ack.Result["bandwidth_bytes_per_second"] = limit.AverageBytesPerSecond.ToString(CultureInfo.InvariantCulture);

                // The stored spec carries the new tier, so a VM recreated at the next start keeps it.
                var spec = vm.Spec.Clone();
                spec.BandwidthTier = t.BandwidthTier;
                spec.BandwidthBytesPerSecond = t.BandwidthBytesPerSecond;
                return (c, tx) => AgentState.UpsertVm(c, tx, spec, vm.ShouldRun, now);
            }

            case Command.KindOneofCase.AllocatePublicPort:
            {
                var a = command.AllocatePublicPort;
                RequireKnown(a.VmId);
                if (a.PublicPort is < 1024 or > 65535 || a.TargetPort is < 1 or > 65535 || a.Protocol != "tcp")
                {
                    throw new ArgumentException($"allocate_public_port: public port {a.PublicPort} / target {a.TargetPort} / protocol '{a.Protocol}' is not supported (tcp, 1024-65535).");
                }

                var port = new LocalPort(a.VmId, a.PublicPort, a.TargetPort, a.Protocol, string.IsNullOrEmpty(a.TargetHost) ? "127.0.0.1" : a.TargetHost);
                if (options.Value.BehindNat)
                {
                    // No inbound connections here: the relay listens on the public port and tunnels to us.
                    var published = await relay.PublishAsync(port, ct).ConfigureAwait(false);
                    ack.Result["relay_public_port"] = published.ToString(CultureInfo.InvariantCulture);
                }
                else
                {
                    var path = await ports.OpenAsync(port, ct).ConfigureAwait(false);
                    ack.Result["forwarding"] = path == PortPath.Dnat ? "dnat" : "userspace";
                }

                ack.Result["public_port"] = a.PublicPort.ToString(CultureInfo.InvariantCulture);
                return (c, tx) => AgentState.UpsertPort(c, tx, port);
            }

            case Command.KindOneofCase.ReleasePublicPort:
            {
                var r = command.ReleasePublicPort;
                if (r.PublicPort is < 1 or > 65535)
                {
                    throw new ArgumentException($"release_public_port: public port {r.PublicPort} is out of range (1-65535).");
                }

                await ports.CloseAsync(r.PublicPort, ct).ConfigureAwait(false);
                await relay.UnpublishAsync(r.PublicPort, ct).ConfigureAwait(false);
                ack.Result["public_port"] = r.PublicPort.ToString(CultureInfo.InvariantCulture);
                return (c, tx) => AgentState.DeletePort(c, tx, r.PublicPort, r.Protocol);
            }

            case Command.KindOneofCase.TakeBackup:
                RequireVmId(command.TakeBackup.VmId);
                storage.BeginBackup(command, identity.NodeId.Value);
                ack.Status = AckStatus.InProgress;
                return null;

            case Command.KindOneofCase.StartVolumeMove:
                RequireVmId(command.StartVolumeMove.VmId);
                storage.BeginMove(command);
                ack.Status = AckStatus.InProgress;
                return null;

            default:
                throw new ArgumentException($"command {command.CommandId} has no known kind.");
        }
    }

    private static void RequireVmId(string id)
    {
        if (!Core.Model.VmId.TryParse(id, null, out _))
        {
            throw new ArgumentException($"'{id}' is not a VM id.");
        }
    }

    private LocalVm RequireKnown(string id)
    {
        RequireVmId(id);
        foreach (var vm in state.ListVms())
        {
            if (vm.Id == id)
            {
                return vm;
            }
        }

        throw new ArgumentException($"VM {id} is not on this node.");
    }
}
