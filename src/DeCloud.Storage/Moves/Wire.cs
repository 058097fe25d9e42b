using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace DeCloud.Storage.Moves;

/// <summary>Frame types of the move protocol (see README: "Wire protocol").</summary>
internal enum FrameType : byte
{
    Hello = 1,
    HelloReply = 2,
    BeginStream = 3,
    StreamReady = 4,
    ResumeFrom = 5,
    Chunk = 6,
    EndStream = 7,
    StreamResult = 8,
    Verify = 9,
    VerifyReply = 10,
    Finalize = 11,
    Complete = 12,
    Abort = 13,
    Reply = 14,
    Error = 15,
}

/// <summary>Status codes carried by replies.</summary>
internal enum WireStatus : byte
{
    Ok = 0,
    AlreadyReceived = 1,
    ParentMissing = 2,
    TargetExists = 3,
    InvalidRequest = 4,
    ChunkChecksum = 5,
    ReceiveFailed = 6,
    NotFound = 7,
    QuotaExceeded = 8,
    NoSpace = 9,
    Internal = 10,
    VersionMismatch = 11,
}

/// <summary>
/// Layout constants. A frame is an 8-byte header (type u8, flags u8, reserved u16 = 0, payload length
/// u32, little-endian) followed by the payload. A chunk payload is index u64, raw length u32,
/// XxHash128 of the raw data (16 bytes), then the data (Brotli-compressed when flag bit 0 is set).
/// </summary>
internal static class WireFormat
{
    public const uint Magic = 0x4D534344; // "DCSM"
    /// <summary>
    /// 3: ResumeFrom past zero carries the sender's digest of the chunks before it (a receive that outlives its
    /// connection refuses a resume of another stream). 2: the verification manifest covers owners, modes and times.
    /// </summary>
    public const ushort Version = 3;
    public const int HeaderSize = 8;
    public const int ChunkHeaderSize = 8 + 4 + 16;
    public const int ChunkDataOffset = HeaderSize + ChunkHeaderSize;
    public const int MinChunkSize = 64 * 1024;
    public const int MaxChunkSize = 16 * 1024 * 1024;
    public const int MaxControlPayload = 64 * 1024;
    public const byte FlagBrotli = 1;
    public const int HashSize = 16;

    public static void WriteHeader(Span<byte> destination, FrameType type, byte flags, int payloadLength)
    {
        destination[0] = (byte)type;
        destination[1] = flags;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], (uint)payloadLength);
    }

    /// <summary>Digest over a sequence of chunk hashes: both ends compute it to agree on a staged prefix.</summary>
    public static byte[] PrefixDigest(IReadOnlyList<byte[]> chunkHashes, int count)
    {
        var h = new XxHash128();
        for (var i = 0; i < count; i++)
        {
            h.Append(chunkHashes[i]);
        }

        return h.GetCurrentHash();
    }
}

/// <summary>Writes a control payload: little-endian integers, GUIDs, length-prefixed UTF-8 strings.</summary>
internal sealed class WireWriter
{
    private readonly ArrayBufferWriter<byte> _buffer = new(256);

    public WireWriter U8(byte v)
    {
        _buffer.GetSpan(1)[0] = v;
        _buffer.Advance(1);
        return this;
    }

    public WireWriter U16(ushort v)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer.GetSpan(2), v);
        _buffer.Advance(2);
        return this;
    }

    public WireWriter U32(uint v)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.GetSpan(4), v);
        _buffer.Advance(4);
        return this;
    }

    public WireWriter U64(ulong v)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_buffer.GetSpan(8), v);
        _buffer.Advance(8);
        return this;
    }

    public WireWriter Guid(Guid v)
    {
        v.TryWriteBytes(_buffer.GetSpan(16));
        _buffer.Advance(16);
        return this;
    }

    public WireWriter Bytes(ReadOnlySpan<byte> v)
    {
        _buffer.Write(v);
        return this;
    }

    public WireWriter Str(string v)
    {
        var n = Encoding.UTF8.GetByteCount(v);
        if (n > ushort.MaxValue)
        {
            throw new ArgumentException("A protocol string is limited to 65535 UTF-8 bytes.", nameof(v));
        }

        U16((ushort)n);
        Encoding.UTF8.GetBytes(v, _buffer.GetSpan(n));
        _buffer.Advance(n);
        return this;
    }

    public ReadOnlyMemory<byte> Written => _buffer.WrittenMemory;
}

/// <summary>Reads a control payload; any short or malformed field is a protocol violation naming the field.</summary>
internal ref struct WireReader(ReadOnlySpan<byte> data, FrameType frame)
{
    private ReadOnlySpan<byte> _data = data;

    public byte U8(string field) => Take(1, field)[0];

    public ushort U16(string field) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, field));

    public uint U32(string field) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, field));

    public ulong U64(string field) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, field));

    public Guid Guid(string field) => new(Take(16, field));

    public byte[] Bytes(int count, string field) => Take(count, field).ToArray();

    public string Str(string field)
    {
        var n = U16(field);
        var bytes = Take(n, field);
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new TransferException(TransferFailure.ProtocolViolation, $"{frame} frame: field '{field}' is not valid UTF-8.", ex);
        }
    }

    private ReadOnlySpan<byte> Take(int n, string field)
    {
        if (_data.Length < n)
        {
            throw new TransferException(TransferFailure.ProtocolViolation,
                $"{frame} frame is truncated: field '{field}' needs {n} bytes, {_data.Length} left.");
        }

        var s = _data[..n];
        _data = _data[n..];
        return s;
    }
}

/// <summary>A received frame whose payload lives in a pooled buffer; dispose returns it.</summary>
internal readonly struct Frame(FrameType type, byte flags, byte[] buffer, int length) : IDisposable
{
    public FrameType Type { get; } = type;

    public byte Flags { get; } = flags;

    public byte[] Buffer { get; } = buffer;

    public int Length { get; } = length;

    public ReadOnlySpan<byte> Payload => Buffer.AsSpan(0, Length);

    public WireReader Reader() => new(Payload, Type);

    public void Dispose()
    {
        if (Buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(Buffer);
        }
    }
}

/// <summary>
/// Frames over any <see cref="Stream"/>. Payloads are read into pooled buffers with exact reads (large
/// chunk payloads are read straight into one contiguous buffer, so no extra copy is made). I/O errors
/// and early ends become <see cref="TransferException"/>s that say which.
/// </summary>
internal sealed class FrameChannel(Stream stream, int maxPayload)
{
    private readonly byte[] _header = new byte[WireFormat.HeaderSize];
    private readonly byte[] _writeHeader = new byte[WireFormat.HeaderSize];

    public Stream Stream => stream;

    public long BytesWritten { get; private set; }

    public async ValueTask SendAsync(FrameType type, WireWriter? payload, CancellationToken cancellationToken)
    {
        var body = payload?.Written ?? ReadOnlyMemory<byte>.Empty;
        var buffer = ArrayPool<byte>.Shared.Rent(WireFormat.HeaderSize + body.Length);
        try
        {
            WireFormat.WriteHeader(buffer, type, 0, body.Length);
            body.Span.CopyTo(buffer.AsSpan(WireFormat.HeaderSize));
            await WriteRawAsync(buffer.AsMemory(0, WireFormat.HeaderSize + body.Length), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Writes bytes that already start with a frame header (chunk frames are built in place).</summary>
    public async ValueTask WriteRawAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        try
        {
            await stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            BytesWritten += frame.Length;
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            throw new TransferException(TransferFailure.PeerDisconnected, $"The connection to the peer was lost while sending: {ex.Message}", ex);
        }
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        try
        {
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            throw new TransferException(TransferFailure.PeerDisconnected, $"The connection to the peer was lost while sending: {ex.Message}", ex);
        }
    }

    /// <summary>Reads the next frame; returns null on a clean end of stream at a frame boundary.</summary>
    public async ValueTask<Frame?> TryReceiveAsync(CancellationToken cancellationToken)
    {
        int got;
        try
        {
            got = await stream.ReadAtLeastAsync(_header, WireFormat.HeaderSize, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            throw new TransferException(TransferFailure.PeerDisconnected, $"The connection to the peer was lost: {ex.Message}", ex);
        }

        if (got == 0)
        {
            return null;
        }

        if (got < WireFormat.HeaderSize)
        {
            throw new TransferException(TransferFailure.Truncated, $"The connection ended inside a frame header ({got} of {WireFormat.HeaderSize} bytes).");
        }

        var type = (FrameType)_header[0];
        var flags = _header[1];
        var length = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(4));
        if (type is < FrameType.Hello or > FrameType.Error)
        {
            throw new TransferException(TransferFailure.ProtocolViolation, $"Unknown frame type {_header[0]}.");
        }

        if (BinaryPrimitives.ReadUInt16LittleEndian(_header.AsSpan(2)) != 0)
        {
            throw new TransferException(TransferFailure.ProtocolViolation, $"{type} frame has non-zero reserved bits.");
        }

        var limit = type == FrameType.Chunk ? maxPayload : WireFormat.MaxControlPayload;
        if (length > limit)
        {
            throw new TransferException(TransferFailure.ProtocolViolation, $"{type} frame of {length} bytes exceeds the limit of {limit} bytes.");
        }

        if (length == 0)
        {
            return new Frame(type, flags, [], 0);
        }

        var buffer = ArrayPool<byte>.Shared.Rent((int)length);
        try
        {
            await stream.ReadExactlyAsync(buffer.AsMemory(0, (int)length), cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException ex)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw new TransferException(TransferFailure.Truncated, $"The connection ended inside a {type} frame of {length} bytes.", ex);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw new TransferException(TransferFailure.PeerDisconnected, $"The connection to the peer was lost inside a {type} frame: {ex.Message}", ex);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }

        return new Frame(type, flags, buffer, (int)length);
    }

    /// <summary>Reads the next frame and requires it to be <paramref name="expected"/> (an Error frame becomes an exception).</summary>
    public async ValueTask<Frame> ReceiveAsync(FrameType expected, CancellationToken cancellationToken)
    {
        var frame = await TryReceiveAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new TransferException(TransferFailure.PeerDisconnected, $"The peer closed the connection while {expected} was expected.");
        if (frame.Type == expected)
        {
            return frame;
        }

        using (frame)
        {
            if (frame.Type == FrameType.Error)
            {
                var r = frame.Reader();
                var code = (WireStatus)r.U8("code");
                var message = r.Str("message");
                throw new TransferException(Map(code), $"The peer reported {code}: {message}");
            }

            throw new TransferException(TransferFailure.ProtocolViolation, $"Expected a {expected} frame, got {frame.Type}.");
        }
    }

    public static TransferFailure Map(WireStatus status) => status switch
    {
        WireStatus.ChunkChecksum => TransferFailure.ChunkChecksumMismatch,
        WireStatus.ReceiveFailed => TransferFailure.ReceiveFailed,
        WireStatus.QuotaExceeded => TransferFailure.DestinationQuotaExceeded,
        WireStatus.NoSpace => TransferFailure.DestinationFull,
        WireStatus.InvalidRequest or WireStatus.VersionMismatch => TransferFailure.ProtocolViolation,
        _ => TransferFailure.Rejected,
    };
}
