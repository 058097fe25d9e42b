using System.Diagnostics.Metrics;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Orchestrator.Storage;
using DeCloud.Protocol.V1;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Orchestrator.Agents;

/// <summary>
/// The gRPC endpoint agents dial: verifies the registration, replays pending commands, then records
/// heartbeats and applies acknowledgements until the stream ends. Garbage from one agent ends only
/// that agent's stream.
/// </summary>
internal sealed class AgentControlService(
    OrchestratorStore store,
    AgentSessions sessions,
    RelayAssigner relays,
    Billing.IUsageSink usage,
    Billing.INodePricingSource pricing,
    NodeReputation reputation,
    OrchestratorMetrics metrics,
    IOptions<OrchestratorOptions> options,
    TimeProvider time,
    ILogger<AgentControlService> logger) : AgentControl.AgentControlBase
{
    private const int MaxBadMessages = 10;
    private readonly RegistrationVerifier _verifier = new(time, options.Value.RegistrationClockSkew, store.Registry.Options.BaselineScorePerPoint);

    public override async Task Connect(IAsyncStreamReader<AgentMessage> requestStream, IServerStreamWriter<OrchestratorMessage> responseStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        using var firstTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        firstTimeout.CancelAfter(TimeSpan.FromSeconds(30));
        bool got;
        try
        {
            got = await requestStream.MoveNext(firstTimeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, "No Register message within 30 s of opening the stream."));
        }

        if (!got || requestStream.Current.BodyCase != AgentMessage.BodyOneofCase.Register)
        {
            metrics.Registrations.Add(1, new KeyValuePair<string, object?>("outcome", "malformed"));
            throw new RpcException(new Status(StatusCode.InvalidArgument, "The first message on the stream must be Register."));
        }

        var register = requestStream.Current.Register;
        var (verified, error) = _verifier.Verify(register);
        var (prices, pricingError) = verified is null ? (null, null) : pricing.Resolve(verified.Registration.NodeId, verified.OfferedPricing);
        if (verified is null || prices is null)
        {
            error ??= pricingError!;
            Log.RegistrationRejected(logger, error);
            metrics.Registrations.Add(1, new KeyValuePair<string, object?>("outcome", "rejected"));
            throw new RpcException(new Status(verified is null ? StatusCode.Unauthenticated : StatusCode.InvalidArgument, "Registration rejected: " + error));
        }

        var node = await store.RegisterNodeAsync(verified.Registration with { Pricing = prices }, verified.Agent, ct).ConfigureAwait(false);
        metrics.Registrations.Add(1, new KeyValuePair<string, object?>("outcome", "accepted"));
        Log.NodeRegistered(logger, node.Id.Value, node.Operator.ToString(), node.Capacity.ComputePoints, node.BehindNat);

        using var session = new AgentSession(node.Id, ct);
        sessions.Attach(session);
        metrics.AgentsConnected.Add(1);
        var writer = PumpAsync(session, responseStream);
        try
        {
            session.TrySend(new OrchestratorMessage
            {
                Registered = new Registered
                {
                    NodeId = node.Id.Value,
                    HeartbeatIntervalMs = (int)options.Value.HeartbeatInterval.TotalMilliseconds,
                },
            });
            foreach (var pending in store.PendingCommands(node.Id))
            {
                if (session.TrySend(new OrchestratorMessage { Command = pending }))
                {
                    metrics.CommandsSent.Add(1);
                }
            }

            relays.OnRegistered(node);
            await ReadLoopAsync(node.Id, session, requestStream).ConfigureAwait(false);
        }
        finally
        {
            session.End();
            metrics.AgentsConnected.Add(-1);
            if (sessions.Detach(session))
            {
                // The registry's health monitor marks the node offline once its heartbeats are overdue: a reconnect within
                // OfflineAfter keeps it online, and its pending commands are re-sent then.
                Log.NodeDisconnected(logger, node.Id.Value);
            }

            try
            {
                await writer.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or InvalidOperationException or IOException)
            {
                // The stream is gone; nothing more to write.
            }
        }
    }

    private async Task ReadLoopAsync(NodeId node, AgentSession session, IAsyncStreamReader<AgentMessage> requestStream)
    {
        var bad = 0;
        try
        {
            while (await requestStream.MoveNext(session.Ended).ConfigureAwait(false))
            {
                var m = requestStream.Current;
                string? problem = null;
                switch (m.BodyCase)
                {
                    case AgentMessage.BodyOneofCase.Heartbeat:
                        problem = await OnHeartbeatAsync(node, m.Heartbeat, session.Ended).ConfigureAwait(false);
                        break;
                    case AgentMessage.BodyOneofCase.Ack:
                        problem = await OnAckAsync(node, m.Ack, session.Ended).ConfigureAwait(false);
                        break;
                    case AgentMessage.BodyOneofCase.Register:
                        problem = "Register is only valid as the first message of a stream.";
                        break;
                    default:
                        problem = "empty or unknown message body.";
                        break;
                }

                if (problem is not null)
                {
                    Log.BadAgentMessage(logger, node.Value, problem);
                    var fatal = ++bad >= MaxBadMessages;
                    session.TrySend(new OrchestratorMessage { Error = new ProtocolError { Code = "malformed", Message = problem, Fatal = fatal } });
                    if (fatal)
                    {
                        return;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (session.Ended.IsCancellationRequested)
        {
            // Replaced by a newer stream, timed out, or shutting down.
        }
        catch (IOException)
        {
            // The agent went away mid-message.
        }
    }

    private async Task<string?> OnHeartbeatAsync(NodeId node, Heartbeat hb, CancellationToken ct)
    {
        var u = hb.Used ?? new Capacity();
        if (u.ComputePoints < 0 || u.MemoryMib < 0 || u.StorageGib < 0 || u.Gpus < 0 || hb.Vms.Count > NodeHeartbeat.MaxVms)
        {
            return "heartbeat has negative resource use or too many VMs.";
        }

        try
        {
            await store.RecordHeartbeatAsync(node, new Resources(u.ComputePoints, u.MemoryMib, u.StorageGib, u.Gpus), hb.Vms, time.GetUtcNow(), ct).ConfigureAwait(false);
        }
        catch (DeCloudValidationException ex)
        {
            return "heartbeat rejected: " + ex.Message;
        }

        metrics.Heartbeats.Add(1);
        return usage.OnHeartbeat(node, hb);
    }

    private async Task<string?> OnAckAsync(NodeId node, CommandAck ack, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(ack.CommandId) || ack.CommandId.Length > 64)
        {
            return "ack has no valid command_id.";
        }

        if (store.ApplyAck(node, ack, time.GetUtcNow(), out var change))
        {
            metrics.Acks.Add(1, new KeyValuePair<string, object?>("status", ack.Status.ToString()));
            Log.CommandAcked(logger, ack.CommandId, "-", node.Value, ack.Status.ToString(), ack.Error);
            if (change is { } c)
            {
                // Not cancelled with the stream: the ack is stored, so its count must be too.
                await reputation.RecordAsync(c, CancellationToken.None).ConfigureAwait(false);
            }
        }

        return null;
    }

    private static async Task PumpAsync(AgentSession session, IServerStreamWriter<OrchestratorMessage> stream)
    {
        await foreach (var m in session.Outbox.Reader.ReadAllAsync(session.Ended).ConfigureAwait(false))
        {
            await stream.WriteAsync(m, session.Ended).ConfigureAwait(false);
        }
    }
}
