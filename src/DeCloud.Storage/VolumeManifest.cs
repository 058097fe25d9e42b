using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace DeCloud.Storage;

/// <summary>
/// A checksum manifest of a directory tree, reduced to one digest: every entry in ordinal path order
/// contributes its relative path, kind, permission bits, and for files the length and an XxHash128
/// of the content, for symbolic links the target. Two trees with equal digests hold the same files
/// with the same bytes. Used to verify a move or a restore on both hosts.
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
        Span<byte> scratch = stackalloc byte[16];
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
                    BinaryPrimitives.WriteInt32LittleEndian(scratch, (int)info.UnixFileMode);
                    digest.Append(scratch[..4]);
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
                        digest.Append(scratch);
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
