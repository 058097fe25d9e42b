using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace DeCloud.Relay.Forwarding;

/// <summary>Builds and parses PROXY protocol version 2 headers (binary form, PROXY command, TCP or UDP).</summary>
internal static class ProxyProtocolV2
{
    private static ReadOnlySpan<byte> Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary>Writes the header telling the target that <paramref name="client"/> connected to <paramref name="destination"/>.</summary>
    public static byte[] Build(IPEndPoint client, IPEndPoint destination, bool udp = false)
    {
        var src = client.Address.IsIPv4MappedToIPv6 ? client.Address.MapToIPv4() : client.Address;
        var dst = destination.Address.IsIPv4MappedToIPv6 ? destination.Address.MapToIPv4() : destination.Address;
        if (src.AddressFamily != dst.AddressFamily)
        {
            dst = src.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;
        }

        var v4 = src.AddressFamily == AddressFamily.InterNetwork;
        var addressLength = v4 ? 12 : 36;
        var header = new byte[16 + addressLength];
        Signature.CopyTo(header);
        header[12] = 0x21; // version 2, PROXY command
        header[13] = (byte)((v4 ? 0x10 : 0x20) | (udp ? 0x02 : 0x01));
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(14), (ushort)addressLength);
        var span = header.AsSpan(16);
        var size = v4 ? 4 : 16;
        src.TryWriteBytes(span, out _);
        dst.TryWriteBytes(span[size..], out _);
        BinaryPrimitives.WriteUInt16BigEndian(span[(2 * size)..], (ushort)client.Port);
        BinaryPrimitives.WriteUInt16BigEndian(span[((2 * size) + 2)..], (ushort)destination.Port);
        return header;
    }

    /// <summary>Parses a header at the start of <paramref name="data"/>; returns the source and destination and the header length, or null.</summary>
    public static (IPEndPoint Source, IPEndPoint Destination, int Length)? TryParse(ReadOnlySpan<byte> data)
    {
        if (data.Length < 16 || !data[..12].SequenceEqual(Signature) || data[12] != 0x21)
        {
            return null;
        }

        var family = data[13] >> 4;
        var length = BinaryPrimitives.ReadUInt16BigEndian(data[14..]);
        var size = family switch { 1 => 4, 2 => 16, _ => 0 };
        if (size == 0 || length < (2 * size) + 4 || data.Length < 16 + length)
        {
            return null;
        }

        var body = data[16..];
        var source = new IPEndPoint(new IPAddress(body[..size]), BinaryPrimitives.ReadUInt16BigEndian(body[(2 * size)..]));
        var destination = new IPEndPoint(new IPAddress(body[size..(2 * size)]), BinaryPrimitives.ReadUInt16BigEndian(body[((2 * size) + 2)..]));
        return (source, destination, 16 + length);
    }
}
