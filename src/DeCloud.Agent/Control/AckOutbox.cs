using System.Threading.Channels;
using DeCloud.Protocol.V1;

namespace DeCloud.Agent.Control;

/// <summary>
/// Acks that finish after their command was answered (a long-running command first answered IN_PROGRESS).
/// The control stream sends them as they arrive. One lost with a broken stream is not lost for good: the ack is
/// stored, the orchestrator re-sends a command it holds as in progress, and the stored final ack answers it.
/// </summary>
internal sealed class AckOutbox
{
    private readonly Channel<CommandAck> _channel = Channel.CreateUnbounded<CommandAck>(new UnboundedChannelOptions { SingleReader = true });

    public ChannelReader<CommandAck> Reader => _channel.Reader;

    public void Post(CommandAck ack) => _channel.Writer.TryWrite(ack);
}
