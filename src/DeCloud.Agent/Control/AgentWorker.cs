using System.Globalization;
using DeCloud.Agent.Benchmark;
using DeCloud.Agent.Hypervisors;
using DeCloud.Agent.Ports;
using DeCloud.Agent.State;
using DeCloud.Core.Model;
using DeCloud.Protocol.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Agent.Control;

/// <summary>
/// The agent's main loop: measures compute points at first start, reconciles local state with the
/// hypervisor, then holds the control stream to the orchestrator (register, heartbeat, execute
/// commands, ack), reconnecting with backoff. A lost stream never touches a VM.
/// </summary>
internal sealed class AgentWorker(
    AgentIdentity identity,
    AgentState state,
    IHypervisor hypervisor,
    CommandExecutor executor,
    PublicPorts publicPorts,
    Relaying.AgentRelay relay,
    AgentStatus status,
    Storage.AgentStorage storage,
    AckOutbox outbox,
    IOptions<AgentOptions> options,
    TimeProvider time,
    ILogger<AgentWorker> logger) : BackgroundService
{
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly UsageReporter _usage = new(state, time);
    private AgentHardware _hardware = AgentHardware.Detect(0);

    public override void Dispose()
    {
        _writeGate.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        var capacity = await MeasureCapacityAsync(o, stoppingToken).ConfigureAwait(false);
        await ReconcileAsync(stoppingToken).ConfigureAwait(false);
        try
        {
            storage.StartReceiver();
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            // Moves to this node fail until the port is free; everything else keeps working.
            Log.ReconcileFailed(logger, "*", $"volume receiver on port {o.MoveListenPort}: {ex.Message}");
        }

        status.MarkReconciled();
        await relay.StartServerAsync(o.DataDirectory, stoppingToken).ConfigureAwait(false);

        var delay = o.ReconnectDelay;
        using var channel = GrpcChannel.ForAddress(o.OrchestratorUrl, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                KeepAlivePingDelay = TimeSpan.FromSeconds(20),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                ConnectTimeout = TimeSpan.FromSeconds(10),
            },
        });
        var client = new AgentControl.AgentControlClient(channel);
        while (!stoppingToken.IsCancellationRequested)
        {
            string reason;
            try
            {
                var registered = await RunStreamAsync(client, capacity, stoppingToken).ConfigureAwait(false);
                reason = "the orchestrator closed the stream";
                if (registered)
                {
                    delay = o.ReconnectDelay;
                }
            }
            catch (RpcException ex) when (!stoppingToken.IsCancellationRequested)
            {
                reason = $"{ex.StatusCode}: {ex.Status.Detail}";
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or InvalidOperationException && !stoppingToken.IsCancellationRequested)
            {
                reason = ex.Message;
            }
            catch (Exception ex) when (ex is OperationCanceledException or RpcException && stoppingToken.IsCancellationRequested)
            {
                break;
            }

            status.Connected = false;
            Log.StreamEnded(logger, o.OrchestratorUrl, reason, delay);
            try
            {
                await Task.Delay(delay, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, o.MaxReconnectDelay.Ticks));
        }
    }

    private async Task<bool> RunStreamAsync(AgentControl.AgentControlClient client, Capacity capacity, CancellationToken ct)
    {
        var o = options.Value;
        using var streamCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var call = client.Connect(cancellationToken: streamCts.Token);
        await SendAsync(call.RequestStream, new AgentMessage { Register = identity.CreateRegister(o, capacity, _hardware, state.LastExecutedSequence(), relay.Endpoint, time.GetUtcNow()) }, streamCts.Token).ConfigureAwait(false);

        if (!await call.ResponseStream.MoveNext(streamCts.Token).ConfigureAwait(false)
            || call.ResponseStream.Current.BodyCase != OrchestratorMessage.BodyOneofCase.Registered)
        {
            throw new InvalidOperationException("the orchestrator did not answer Register with Registered.");
        }

        var registered = call.ResponseStream.Current.Registered;
        var interval = TimeSpan.FromMilliseconds(Math.Clamp(registered.HeartbeatIntervalMs, 50, 300_000));
        status.Connected = true;
        status.Registrations++;
        Log.Registered(logger, o.OrchestratorUrl, identity.NodeId.Value, capacity.ComputePoints, hypervisor.Description);

        var heartbeats = Task.WhenAll(HeartbeatLoopAsync(call.RequestStream, interval, streamCts.Token), OutboxLoopAsync(call.RequestStream, streamCts.Token));
        try
        {
            await SendHeartbeatAsync(call.RequestStream, streamCts.Token).ConfigureAwait(false);
            while (await call.ResponseStream.MoveNext(streamCts.Token).ConfigureAwait(false))
            {
                var m = call.ResponseStream.Current;
                relay.Observe(m);
                switch (m.BodyCase)
                {
                    case OrchestratorMessage.BodyOneofCase.Command:
                        var ack = await executor.ExecuteAsync(m.Command, streamCts.Token).ConfigureAwait(false);
                        await SendAsync(call.RequestStream, new AgentMessage { Ack = ack }, streamCts.Token).ConfigureAwait(false);
                        break;
                    case OrchestratorMessage.BodyOneofCase.Error:
                        Log.ProtocolError(logger, m.Error.Code, m.Error.Message, m.Error.Fatal);
                        if (m.Error.Fatal)
                        {
                            return true;
                        }

                        break;
                    case OrchestratorMessage.BodyOneofCase.RelayAssignment:
                        status.RelayNodeId = m.RelayAssignment.RelayNodeId;
                        status.RelayEndpoint = m.RelayAssignment.RelayEndpoint;
                        Log.RelayAssigned(logger, m.RelayAssignment.RelayNodeId, m.RelayAssignment.RelayEndpoint);
                        try
                        {
                            await relay.AssignAsync(identity.NodeId.Value, m.RelayAssignment.RelayEndpoint, m.RelayAssignment.Secret.ToByteArray(), streamCts.Token).ConfigureAwait(false);
                        }
                        catch (Exception ex) when (ex is ArgumentException or DeCloud.Relay.RelayException or InvalidOperationException)
                        {
                            Log.ProtocolError(logger, "relay_assignment", ex.Message, false);
                        }

                        break;
                    case OrchestratorMessage.BodyOneofCase.RelayGrant:
                        relay.Grant(m.RelayGrant.NodeId, m.RelayGrant.Secret.ToByteArray());
                        break;
                    default:
                        break;
                }
            }

            return true;
        }
        finally
        {
            await streamCts.CancelAsync().ConfigureAwait(false);
            try
            {
                await heartbeats.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or RpcException or InvalidOperationException or IOException)
            {
                // The stream is gone.
            }
        }
    }

    private async Task HeartbeatLoopAsync(IClientStreamWriter<AgentMessage> stream, TimeSpan interval, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(interval, time);
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
        {
            await SendHeartbeatAsync(stream, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Sends acks that finished after their command was answered (long-running storage commands).</summary>
    private async Task OutboxLoopAsync(IClientStreamWriter<AgentMessage> stream, CancellationToken ct)
    {
        while (await outbox.Reader.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            while (outbox.Reader.TryRead(out var ack))
            {
                await SendAsync(stream, new AgentMessage { Ack = ack }, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task SendHeartbeatAsync(IClientStreamWriter<AgentMessage> stream, CancellationToken ct)
    {
        var powered = await hypervisor.ListAsync(ct).ConfigureAwait(false);
        var hb = new Heartbeat
        {
            Sequence = status.NextHeartbeatSequence(),
            SentAtUnixMs = time.GetUtcNow().ToUnixTimeMilliseconds(),
            Used = new Capacity(),
        };
        var ports = state.ListPorts();
        foreach (var vm in state.ListVms())
        {
            var power = powered.TryGetValue(vm.Id, out var p) ? p : VmPowerState.Missing;
            var vs = new VmStatus { VmId = vm.Id, State = power };
            vs.Services.Add(new ServiceReadiness { Name = "vm", Ready = power == VmPowerState.Running, Detail = power.ToString() });
            foreach (var port in ports)
            {
                if (port.VmId == vm.Id)
                {
                    vs.Services.Add(new ServiceReadiness
                    {
                        Name = "port-" + port.PublicPort.ToString(CultureInfo.InvariantCulture),
                        Ready = options.Value.BehindNat ? relay.IsPublished(port.PublicPort) : publicPorts.IsOpen(port.PublicPort),
                    });
                }
            }

            hb.Vms.Add(vs);
            if (power == VmPowerState.Running && vm.Spec.Resources is { } r)
            {
                hb.Used.ComputePoints += r.ComputePoints;
                hb.Used.MemoryMib += r.MemoryMib;
                hb.Used.StorageGib += r.StorageGib;
            }
        }

        _usage.Fill(hb);
        await SendAsync(stream, new AgentMessage { Heartbeat = hb }, ct).ConfigureAwait(false);
    }

    private async Task SendAsync(IClientStreamWriter<AgentMessage> stream, AgentMessage message, CancellationToken ct)
    {
        await _writeGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await stream.WriteAsync(message, ct).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private async Task<Capacity> MeasureCapacityAsync(AgentOptions o, CancellationToken ct)
    {
        var points = o.ComputePoints;
        if (points == 0 && int.TryParse(state.GetFact("compute_points"), CultureInfo.InvariantCulture, out var stored))
        {
            points = stored;
        }

        if (points == 0)
        {
            var m = await ComputePointMeter.MeasureAsync(o.Benchmark, o.BenchmarkDuration, ComputePointNormalizer.Default, time, ct).ConfigureAwait(false);
            Log.ComputeMeasured(logger, m.Method, m.Score, m.Threads, m.ComputePoints);
            state.SetFact("compute_points", m.ComputePoints.ToString(CultureInfo.InvariantCulture));
            state.SetFact("compute_score", m.Score.ToString("F1", CultureInfo.InvariantCulture));
            state.SetFact("compute_method", m.Method);
            points = m.ComputePoints;
        }

        status.ComputePoints = points;
        // The registry derives compute points from the score: send the measured score, and never less than the advertised
        // points are worth (configured points, or the one point a slow machine is rounded up to).
        // Configured points are declared as exactly their worth.
        var score = o.ComputePoints == 0 && double.TryParse(state.GetFact("compute_score"), NumberStyles.Float, CultureInfo.InvariantCulture, out var measured) ? measured : 0;
        _hardware = AgentHardware.Detect(Math.Max(score, points * ComputePointNormalizer.Default.BaselineScorePerPoint));
        return new Capacity
        {
            ComputePoints = points,
            MemoryMib = o.MemoryMiB > 0 ? o.MemoryMiB : HostMemoryMiB(),
            StorageGib = o.StorageGiB,
        };
    }

    /// <summary>Restores what local state says should exist. Never deletes anything the hypervisor has.</summary>
    internal async Task ReconcileAsync(CancellationToken ct)
    {
        var present = await hypervisor.ListAsync(ct).ConfigureAwait(false);
        int recreated = 0, restarted = 0;
        var vms = state.ListVms();
        foreach (var vm in vms)
        {
            try
            {
                if (!present.TryGetValue(vm.Id, out var power))
                {
                    await hypervisor.CreateAsync(vm.Spec, vm.ShouldRun, ct).ConfigureAwait(false);
                    recreated++;
                }
                else if (vm.ShouldRun && power != VmPowerState.Running)
                {
                    await hypervisor.StartAsync(vm.Id, ct).ConfigureAwait(false);
                    restarted++;
                }
            }
            catch (HypervisorException ex)
            {
                Log.ReconcileFailed(logger, vm.Id, ex.Message);
            }
        }

        var ports = state.ListPorts();
        if (!options.Value.BehindNat)
        {
            try
            {
                await publicPorts.ReconcileAsync(ports, ct).ConfigureAwait(false);
            }
            catch (DeCloud.Relay.RelayException ex)
            {
                // iptables itself failed (e.g. no CAP_NET_ADMIN): the VMs are untouched and commands keep being answered.
                Log.ReconcileFailed(logger, "*", "public ports: " + ex.Message);
            }
        }

        var interrupted = storage.FailInterrupted();
        if (interrupted > 0)
        {
            Log.ReconcileFailed(logger, "*", $"{interrupted} storage command(s) were cut off by a restart and are now FAILED");
        }

        Log.Reconciled(logger, vms.Count, recreated, restarted, ports.Count);
    }

    private static long HostMemoryMiB()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                {
                    var kb = long.Parse(line["MemTotal:".Length..].Replace("kB", string.Empty, StringComparison.Ordinal).Trim(), CultureInfo.InvariantCulture);
                    return kb / 1024;
                }
            }
        }
        catch (IOException)
        {
            // Fall through to a conservative default.
        }

        return 1024;
    }
}

/// <summary>Live facts about the agent, for the CLI and tests.</summary>
internal sealed class AgentStatus
{
    public bool Connected { get; set; }

    public int Registrations { get; set; }

    private ulong _heartbeats;

    public ulong HeartbeatsSent => Interlocked.Read(ref _heartbeats);

    public ulong NextHeartbeatSequence() => Interlocked.Increment(ref _heartbeats);

    public int ComputePoints { get; set; }

    public string? RelayNodeId { get; set; }

    public string? RelayEndpoint { get; set; }

    private readonly TaskCompletionSource _reconciled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the start-up reconciliation of VMs and ports is done.</summary>
    public Task Reconciled => _reconciled.Task;

    public void MarkReconciled() => _reconciled.TrySetResult();
}
