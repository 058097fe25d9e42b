using System.Buffers.Binary;
using System.Text;

namespace DeCloud.Virtualization.DomainXml;

/// <summary>
/// Writes a cloud-init NoCloud seed: an ISO 9660 image labelled <c>cidata</c> holding <c>user-data</c>,
/// <c>meta-data</c> and optionally <c>network-config</c>, for <see cref="DomainDefinition.CloudInitSeedPath"/>.
/// The image is built in memory and moved into place, so a failed write never leaves a half-written seed.
/// No external tool (genisoimage, xorriso) is needed.
/// </summary>
public static class NoCloudSeed
{
    /// <summary>The largest file accepted (cloud-init itself reads user-data into memory).</summary>
    public const int MaxFileBytes = 16 * 1024 * 1024;

    private const int Sector = 2048;
    private const int RootSector = 20;

    /// <summary>Writes the seed image to <paramref name="path"/> (replacing it atomically).</summary>
    public static async Task WriteAsync(string path, string userData, string metaData, string? networkConfig = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var image = Build(userData, metaData, networkConfig, TimeProvider.System.GetUtcNow());
        var temp = path + ".dcv-" + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            await File.WriteAllBytesAsync(temp, image, cancellationToken).ConfigureAwait(false);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>Builds the image in memory.</summary>
    internal static byte[] Build(string userData, string metaData, string? networkConfig, DateTimeOffset timestamp)
    {
        ArgumentNullException.ThrowIfNull(userData);
        ArgumentNullException.ThrowIfNull(metaData);
        var files = new List<(string Name, byte[] Data)>
        {
            ("META-DATA;1", Encode(metaData, "meta-data")),
            ("USER-DATA;1", Encode(userData, "user-data")),
        };
        if (networkConfig is not null)
        {
            files.Add(("NETWORK-CONFIG;1", Encode(networkConfig, "network-config")));
        }

        files.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        var firstData = RootSector + 1;
        var extents = new int[files.Count];
        var next = firstData;
        for (var i = 0; i < files.Count; i++)
        {
            extents[i] = next;
            next += Math.Max(1, (files[i].Data.Length + Sector - 1) / Sector);
        }

        var totalSectors = next;
        var image = new byte[totalSectors * Sector];
        var utc = timestamp.ToUniversalTime();

        // Root directory: ".", "..", then the files.
        var root = image.AsSpan(RootSector * Sector, Sector);
        var offset = WriteRecord(root, 0, [0], RootSector, Sector, directory: true, utc);
        offset = WriteRecord(root, offset, [1], RootSector, Sector, directory: true, utc);
        for (var i = 0; i < files.Count; i++)
        {
            offset = WriteRecord(root, offset, Encoding.ASCII.GetBytes(files[i].Name), extents[i], files[i].Data.Length, directory: false, utc);
            files[i].Data.CopyTo(image, extents[i] * Sector);
        }

        // Path tables (little- and big-endian): just the root.
        var l = image.AsSpan(18 * Sector);
        l[0] = 1;
        BinaryPrimitives.WriteInt32LittleEndian(l[2..], RootSector);
        BinaryPrimitives.WriteInt16LittleEndian(l[6..], 1);
        var m = image.AsSpan(19 * Sector);
        m[0] = 1;
        BinaryPrimitives.WriteInt32BigEndian(m[2..], RootSector);
        BinaryPrimitives.WriteInt16BigEndian(m[6..], 1);

        // Primary volume descriptor.
        var pvd = image.AsSpan(16 * Sector, Sector);
        pvd[0] = 1;
        "CD001"u8.CopyTo(pvd[1..]);
        pvd[6] = 1;
        Text(pvd.Slice(8, 32), "LINUX");
        Text(pvd.Slice(40, 32), "cidata");
        Both32(pvd[80..], totalSectors);
        Both16(pvd[120..], 1);
        Both16(pvd[124..], 1);
        Both16(pvd[128..], Sector);
        Both32(pvd[132..], 10);
        BinaryPrimitives.WriteInt32LittleEndian(pvd[140..], 18);
        BinaryPrimitives.WriteInt32BigEndian(pvd[148..], 19);
        WriteRecord(pvd.Slice(156, 34), 0, [0], RootSector, Sector, directory: true, utc);
        Text(pvd.Slice(190, 623), string.Empty);
        var date = Encoding.ASCII.GetBytes(utc.ToString("yyyyMMddHHmmss00", System.Globalization.CultureInfo.InvariantCulture));
        date.CopyTo(pvd[813..]);
        date.CopyTo(pvd[830..]);
        "0000000000000000"u8.CopyTo(pvd[847..]);
        date.CopyTo(pvd[864..]);
        pvd[881] = 1;

        // Set terminator.
        var end = image.AsSpan(17 * Sector, Sector);
        end[0] = 255;
        "CD001"u8.CopyTo(end[1..]);
        end[6] = 1;
        return image;
    }

    private static byte[] Encode(string text, string name)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return bytes.Length <= MaxFileBytes
            ? bytes
            : throw new ArgumentOutOfRangeException(name, bytes.Length, $"NoCloud {name} is {bytes.Length} bytes; at most {MaxFileBytes} bytes are allowed.");
    }

    private static int WriteRecord(Span<byte> dir, int offset, ReadOnlySpan<byte> name, int extent, int length, bool directory, DateTimeOffset utc)
    {
        var size = 33 + name.Length + (name.Length % 2 == 0 ? 1 : 0);
        var r = dir.Slice(offset, size);
        r[0] = (byte)size;
        Both32(r[2..], extent);
        Both32(r[10..], length);
        r[18] = (byte)(utc.Year - 1900);
        r[19] = (byte)utc.Month;
        r[20] = (byte)utc.Day;
        r[21] = (byte)utc.Hour;
        r[22] = (byte)utc.Minute;
        r[23] = (byte)utc.Second;
        r[25] = directory ? (byte)2 : (byte)0;
        Both16(r[28..], 1);
        r[32] = (byte)name.Length;
        name.CopyTo(r[33..]);
        return offset + size;
    }

    private static void Both16(Span<byte> s, int value)
    {
        BinaryPrimitives.WriteInt16LittleEndian(s, (short)value);
        BinaryPrimitives.WriteInt16BigEndian(s[2..], (short)value);
    }

    private static void Both32(Span<byte> s, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(s, value);
        BinaryPrimitives.WriteInt32BigEndian(s[4..], value);
    }

    private static void Text(Span<byte> s, string value)
    {
        s.Fill((byte)' ');
        Encoding.ASCII.GetBytes(value).CopyTo(s);
    }
}
