using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace DeCloud.Storage;

/// <summary>
/// A checksum manifest of a directory tree, reduced to one digest: every entry in ordinal path order
/// contributes its relative path, kind, owner and group ids, permission bits (with setuid, setgid and
/// sticky), modification time to the nanosecond, and for files the length and an XxHash128 of the
/// content, for symbolic links the target. Two trees with equal digests hold the same files with the
/// same bytes, owners, modes and times. Used to verify a move or a restore on both hosts.
/// </summary>
internal sealed record VolumeManifest(byte[] Digest, long Entries, long Bytes)
{
    public bool Matches(VolumeManifest other) => Digest.AsSpan().SequenceEqual(other.Digest) && Entries == other.Entries && Bytes == other.Bytes;

    public override string ToString() => $"{Entries} entries, {Bytes} bytes, digest {Convert.ToHexString(Digest)}";

    public static Task<VolumeManifest> ComputeAsync(string root, CancellationToken cancellationToken) =>
        Task.Run(() => Compute(root, cancellationToken), cancellationToken);

    public static VolumeManifest Compute(string root, CancellationToken cancellationToken)
    {
        var digest = new XxHash128();
        var fileHash = new XxHash128();
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        long entries = 0, bytes = 0;
        Span<byte> scratch = stackalloc byte[24];
        try
        {
            var pending = new Stack<string>();
            pending.Push(root);
            while (pending.Count > 0)
            {
                var dir = pending.Pop();
                var children = Directory.GetFileSystemEntries(dir);
                Array.Sort(children, StringComparer.Ordinal);
                // Depth-first, ordinal: push in reverse so the smallest name is visited first.
                for (var i = children.Length - 1; i >= 0; i--)
                {
                    var path = children[i];
                    var info = new FileInfo(path);
                    if (info.Attributes.HasFlag(FileAttributes.Directory) && info.LinkTarget is null)
                    {
                        pending.Push(path);
                    }
                }

                foreach (var path in children)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var info = new FileInfo(path);
                    var relative = Path.GetRelativePath(root, path);
                    digest.Append(Encoding.UTF8.GetBytes(relative));
                    digest.Append(EntryAttributes.Of(path).Encode(scratch));
                    entries++;
                    if (info.LinkTarget is { } target)
                    {
                        digest.Append("L"u8);
                        digest.Append(Encoding.UTF8.GetBytes(target));
                    }
                    else if (info.Attributes.HasFlag(FileAttributes.Directory))
                    {
                        digest.Append("D"u8);
                    }
                    else
                    {
                        digest.Append("F"u8);
                        fileHash.Reset();
                        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
                        int n;
                        long length = 0;
                        while ((n = stream.Read(buffer)) > 0)
                        {
                            fileHash.Append(buffer.AsSpan(0, n));
                            length += n;
                        }

                        bytes += length;
                        BinaryPrimitives.WriteInt64LittleEndian(scratch, length);
                        digest.Append(scratch[..8]);
                        fileHash.GetCurrentHash(scratch);
                        digest.Append(scratch[..16]);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return new VolumeManifest(digest.GetCurrentHash(), entries, bytes);
    }
}

/// <summary>The attributes of one entry a faithful copy keeps: owner, group, permission bits, modification time.</summary>
internal readonly record struct EntryAttributes(uint Uid, uint Gid, int Mode, long MtimeSeconds, uint MtimeNanoseconds)
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxBasicStats = 0x7ff;

    /// <summary>Reads <paramref name="path"/>'s attributes without following a final symbolic link (<c>statx</c>).</summary>
    public static EntryAttributes Of(string path)
    {
        var buffer = new byte[256];
        if (Libc.Statx(AtFdCwd, path, AtSymlinkNoFollow, StatxBasicStats, buffer) != 0)
        {
            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            throw new IOException($"statx('{path}') failed with errno {errno}.");
        }

        // struct statx: uid @20, gid @24, mode u16 @28, mtime (i64 seconds, u32 nanoseconds) @112.
        return new EntryAttributes(
            BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(20)),
            BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(24)),
            BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(28)) & 0xFFF,
            BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(112)),
            BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(120)));
    }

    /// <summary>Writes the 24 bytes that enter the manifest digest into <paramref name="destination"/> and returns them.</summary>
    public ReadOnlySpan<byte> Encode(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Uid);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], Gid);
        BinaryPrimitives.WriteInt32LittleEndian(destination[8..], Mode);
        BinaryPrimitives.WriteInt64LittleEndian(destination[12..], MtimeSeconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[20..], MtimeNanoseconds);
        return destination[..24];
    }
}
