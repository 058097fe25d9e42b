namespace DeCloud.Relay.Protocol;

/// <summary>
/// Frame reads and writes straight on a transport, for the first frames of a connection: a read takes exactly one
/// frame and not a byte more, so raw bytes that follow on a dedicated data connection stay in the transport.
/// </summary>
internal static class HandshakeFrames
{
    /// <summary>The largest payload accepted in a handshake frame (Hello, Auth, DataChannel are far smaller).</summary>
    public const int MaxPayload = 4096;

    public static async ValueTask WriteAsync(Stream transport, FrameType type, uint streamId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var bytes = new byte[FrameHeader.Size + payload.Length];
        new FrameHeader(FrameHeader.CurrentVersion, type, 0, streamId, payload.Length).Write(bytes);
        payload.Span.CopyTo(bytes.AsSpan(FrameHeader.Size));
        await transport.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        await transport.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads exactly one frame. Throws <see cref="RelayProtocolException"/> for a bad header, <see cref="EndOfStreamException"/> when the peer closes first.</summary>
    public static async ValueTask<(FrameHeader Header, byte[] Payload)> ReadAsync(Stream transport, CancellationToken cancellationToken)
    {
        var head = new byte[FrameHeader.Size];
        await transport.ReadExactlyAsync(head, cancellationToken).ConfigureAwait(false);
        var sequence = new System.Buffers.ReadOnlySequence<byte>(head);
        var status = FrameDecoder.TryDecode(ref sequence, out var header, out _);
        if (status is not (FrameDecodeStatus.Ok or FrameDecodeStatus.NeedMoreData))
        {
            throw new RelayProtocolException(FrameDecoder.Describe(status, header));
        }

        if (header.Length > MaxPayload)
        {
            throw new RelayProtocolException($"handshake frame {header.Type} of {header.Length} bytes exceeds the limit of {MaxPayload}");
        }

        var payload = new byte[header.Length];
        await transport.ReadExactlyAsync(payload, cancellationToken).ConfigureAwait(false);
        return (header, payload);
    }
}
