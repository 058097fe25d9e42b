using System.Collections.Concurrent;
using System.Threading.Channels;
using DeCloud.Core.Model;
using DeCloud.Protocol.V1;

namespace DeCloud.Orchestrator.Agents;

/// <summary>One connected agent stream: an outbox drained by a single writer, and a token that ends the stream.</summary>
internal sealed class AgentSession : IDisposable
{
    private readonly CancellationTokenSource _cts;

    public AgentSession(NodeId nodeId, CancellationToken callAborted)
    {
        NodeId = nodeId;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(callAborted);
        Outbox = Channel.CreateBounded<OrchestratorMessage>(new BoundedChannelOptions(4096)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.DropWrite,
        });
    }

    public NodeId NodeId { get; }

    public Channel<OrchestratorMessage> Outbox { get; }

    /// <summary>Cancelled when the stream must end (replaced by a newer stream, silent too long, shutdown).</summary>
    public CancellationToken Ended => _cts.Token;

    /// <summary>Queues a message; false when the outbox is full or closed (the command stays pending and is re-sent on reconnect).</summary>
    public bool TrySend(OrchestratorMessage message) => Outbox.Writer.TryWrite(message);

    public void End()
    {
        Outbox.Writer.TryComplete();
        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already ended and disposed.
        }
    }

    public void Dispose() => _cts.Dispose();
}

/// <summary>The agents connected right now, one session per node (a reconnect replaces the old stream).</summary>
internal sealed class AgentSessions
{
    private readonly ConcurrentDictionary<NodeId, AgentSession> _sessions = new();

    public int Count => _sessions.Count;

    /// <summary>Makes <paramref name="session"/> the node's current stream and ends the one it replaces.</summary>
    public void Attach(AgentSession session)
    {
        AgentSession? previous = null;
        _sessions.AddOrUpdate(session.NodeId, session, (_, old) =>
        {
            previous = old;
            return session;
        });
        if (previous is not null && !ReferenceEquals(previous, session))
        {
            previous.End();
        }
    }

    /// <summary>Removes <paramref name="session"/> if it is still the node's current one; true when it was.</summary>
    public bool Detach(AgentSession session) =>
        _sessions.TryRemove(new KeyValuePair<NodeId, AgentSession>(session.NodeId, session));

    public bool IsConnected(NodeId node) => _sessions.ContainsKey(node);

    /// <summary>Sends to the node's current stream; false when it is not connected (the command stays pending).</summary>
    public bool TrySend(NodeId node, OrchestratorMessage message) =>
        _sessions.TryGetValue(node, out var s) && s.TrySend(message);

    /// <summary>Ends the stream of a node (it stopped heartbeating).</summary>
    public void End(NodeId node)
    {
        if (_sessions.TryRemove(node, out var s))
        {
            s.End();
        }
    }
}
