using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Text;

namespace DeCloud.Relay.Protocol;

/// <summary>Builds a control payload: big-endian integers and length-prefixed UTF-8 strings.</summary>
internal sealed class PayloadWriter
{
    private readonly ArrayBufferWriter<byte> _buffer = new(64);

    public ReadOnlyMemory<byte> WrittenMemory => _buffer.WrittenMemory;

    public PayloadWriter U8(byte value)
    {
        _buffer.GetSpan(1)[0] = value;
        _buffer.Advance(1);
        return this;
    }

    public PayloadWriter U16(ushort value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_buffer.GetSpan(2), value);
        _buffer.Advance(2);
        return this;
    }

    public PayloadWriter U32(uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_buffer.GetSpan(4), value);
        _buffer.Advance(4);
        return this;
    }

    public PayloadWriter I64(long value)
    {
        BinaryPrimitives.WriteInt64BigEndian(_buffer.GetSpan(8), value);
        _buffer.Advance(8);
        return this;
    }

    public PayloadWriter Bytes(ReadOnlySpan<byte> value)
    {
        U16(checked((ushort)value.Length));
        value.CopyTo(_buffer.GetSpan(value.Length));
        _buffer.Advance(value.Length);
        return this;
    }

    public PayloadWriter String(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        return Bytes(bytes);
    }

    public PayloadWriter EndPoint(IPEndPoint endPoint)
    {
        Span<byte> address = stackalloc byte[16];
        endPoint.Address.TryWriteBytes(address, out var written);
        Bytes(address[..written]);
        return U16((ushort)endPoint.Port);
    }
}

/// <summary>Reads a control payload; every read reports truncation instead of throwing.</summary>
internal ref struct PayloadReader
{
    private ReadOnlySpan<byte> _span;

    public PayloadReader(ReadOnlySpan<byte> span) => _span = span;

    public readonly bool IsEmpty => _span.IsEmpty;

    public bool TryU8(out byte value)
    {
        value = 0;
        if (_span.Length < 1)
        {
            return false;
        }

        value = _span[0];
        _span = _span[1..];
        return true;
    }

    public bool TryU16(out ushort value)
    {
        value = 0;
        if (_span.Length < 2)
        {
            return false;
        }

        value = BinaryPrimitives.ReadUInt16BigEndian(_span);
        _span = _span[2..];
        return true;
    }

    public bool TryU32(out uint value)
    {
        value = 0;
        if (_span.Length < 4)
        {
            return false;
        }

        value = BinaryPrimitives.ReadUInt32BigEndian(_span);
        _span = _span[4..];
        return true;
    }

    public bool TryI64(out long value)
    {
        value = 0;
        if (_span.Length < 8)
        {
            return false;
        }

        value = BinaryPrimitives.ReadInt64BigEndian(_span);
        _span = _span[8..];
        return true;
    }

    public bool TryBytes(out ReadOnlySpan<byte> value)
    {
        value = default;
        if (!TryU16(out var length) || _span.Length < length)
        {
            return false;
        }

        value = _span[..length];
        _span = _span[length..];
        return true;
    }

    public bool TryString(out string value)
    {
        value = string.Empty;
        if (!TryBytes(out var bytes))
        {
            return false;
        }

        try
        {
            value = new UTF8Encoding(false, true).GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    public bool TryEndPoint(out IPEndPoint? value)
    {
        value = null;
        if (!TryBytes(out var address) || (address.Length != 4 && address.Length != 16) || !TryU16(out var port))
        {
            return false;
        }

        value = new IPEndPoint(new IPAddress(address), port);
        return true;
    }
}
