using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace DeCloud.Storage.Moves;

/// <summary>
/// Verified chunks of one send stream kept on the destination, so an interrupted transfer resumes
/// from the last verified chunk. Layout, in 4 KiB blocks: a header block (magic, snapshot UUID, parent
/// UUID, chunk size) naming the stream, then per chunk a record block (raw length u32, XxHash128) and
/// the data padded to a whole block. Opening re-verifies every record and cuts the file at the first
/// one that is short or fails its hash (<see cref="Discarded"/> says which and why), so only verified
/// chunks are ever offered for a resume, even after a crash that lost or tore unflushed writes.
/// <para>
/// Appends go through a second handle opened with <c>O_DIRECT</c> where the filesystem allows it (hence
/// the block layout): the data goes straight to the device without a trip through the page cache,
/// which on Btrfs costs about three times less CPU than buffered writes and leaves the cache to
/// <c>btrfs receive</c>. Appends come from one writer; <see cref="FlushToDisk"/> may run concurrently.
/// </para>
/// </summary>
internal sealed class StagingFile : IDisposable
{
    /// <summary>Alignment of every write (the largest logical block size in common use).</summary>
    internal const int Block = 4096;
    private const int HeaderLength = 8 + 16 + 16 + 4;
    private static readonly byte[] Magic = "DCSSTAGE"u8.ToArray();
    private readonly SafeFileHandle _handle;
    private readonly SafeFileHandle? _direct;
    private readonly List<long> _offsets = [];
    private readonly List<byte[]> _hashes = [];
    private readonly List<int> _lengths = [];
    private byte[]? _scratch;
    private int _scratchOffset;
    private long _end;
    private volatile int _count;
    private volatile int _durable;

    private StagingFile(string path, SafeFileHandle handle, SafeFileHandle? direct)
    {
        Path = path;
        _handle = handle;
        _direct = direct;
    }

    public string Path { get; }

    public int Count => _count;

    /// <summary>Chunks known to be on disk: all those found on open, then those covered by a <see cref="FlushToDisk"/>.</summary>
    public int DurableCount => _durable;

    /// <summary>Whether appends bypass the page cache (<c>O_DIRECT</c>).</summary>
    public bool IsDirect => _direct is not null;

    /// <summary>Why the file was cut when it was opened (a torn or corrupted record), or null.</summary>
    public StagingDiscard? Discarded { get; private set; }

    public IReadOnlyList<byte[]> Hashes => _hashes;

    /// <summary>Bytes the file takes for <paramref name="raw"/> bytes of chunk data (record block plus padded data).</summary>
    internal static long RecordLength(int raw) => Block + RoundUp(raw);

    private static long RoundUp(long n) => (n + Block - 1) & ~(long)(Block - 1);

    public static StagingFile Open(string path, Guid snapshot, Guid parent, int chunkSize)
    {
        var handle = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite, FileOptions.Asynchronous);
        SafeFileHandle? direct = null;
        StagingFile? file = null;
        try
        {
            direct = DirectIo.TryOpen(path);
            file = new StagingFile(path, handle, direct);
            file.Scan(snapshot, parent, chunkSize);
        }
        catch
        {
            if (file is not null)
            {
                file.Dispose();
            }
            else
            {
                direct?.Dispose();
                handle.Dispose();
            }

            throw;
        }

        return file;
    }

    private void Scan(Guid snapshot, Guid parent, int chunkSize)
    {
        var header = new byte[Block];
        Magic.CopyTo(header, 0);
        snapshot.TryWriteBytes(header.AsSpan(8));
        parent.TryWriteBytes(header.AsSpan(24));
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(40), chunkSize);
        var existing = new byte[HeaderLength];
        var length = RandomAccess.GetLength(_handle);
        if (length < Block || RandomAccess.Read(_handle, existing, 0) != HeaderLength || !existing.AsSpan().SequenceEqual(header.AsSpan(0, HeaderLength)))
        {
            // Absent, or staged for another stream: start over.
            RandomAccess.SetLength(_handle, 0);
            RandomAccess.Write(_handle, header, 0);
            _end = Block;
            return;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(chunkSize);
        try
        {
            long offset = Block;
            Span<byte> record = stackalloc byte[4 + WireFormat.HashSize];
            Span<byte> hash = stackalloc byte[WireFormat.HashSize];
            string? problem = null;
            while (offset < length)
            {
                if (offset + Block > length || RandomAccess.Read(_handle, record, offset) != record.Length)
                {
                    problem = "its record block is cut short";
                    break;
                }

                var raw = BinaryPrimitives.ReadInt32LittleEndian(record);
                if (raw <= 0 || raw > chunkSize)
                {
                    problem = $"its record declares {raw} bytes (chunk size {chunkSize})";
                    break;
                }

                var data = buffer.AsSpan(0, raw);
                if (offset + Block + raw > length || RandomAccess.Read(_handle, data, offset + Block) != raw)
                {
                    problem = $"its data is cut short ({Math.Max(0, length - offset - Block)} of {raw} bytes)";
                    break;
                }

                XxHash128.Hash(data, hash);
                if (!hash.SequenceEqual(record[4..]))
                {
                    problem = "its data fails its checksum";
                    break;
                }

                _offsets.Add(offset);
                _hashes.Add(hash.ToArray());
                _lengths.Add(raw);
                offset += RecordLength(raw);
            }

            if (problem is not null)
            {
                Discarded = new StagingDiscard(_hashes.Count, problem, length - offset);
            }

            // A complete last record may lack part of its padding: setting the length restores it.
            _end = offset;
            _count = _hashes.Count;
            _durable = _count;
            RandomAccess.SetLength(_handle, _end);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Keeps only the first <paramref name="count"/> chunks.</summary>
    public void TruncateTo(int count)
    {
        if (count >= _hashes.Count)
        {
            return;
        }

        _end = count == 0 ? Block : _offsets[count];
        _offsets.RemoveRange(count, _offsets.Count - count);
        _hashes.RemoveRange(count, _hashes.Count - count);
        _lengths.RemoveRange(count, _lengths.Count - count);
        _count = count;
        _durable = Math.Min(_durable, count);
        RandomAccess.SetLength(_handle, _end);
    }

    /// <summary>Reads staged chunk <paramref name="index"/> into <paramref name="buffer"/>; returns its length.</summary>
    public async ValueTask<int> ReadAsync(int index, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var raw = _lengths[index];
        var n = await RandomAccess.ReadAsync(_handle, buffer[..raw], _offsets[index] + Block, cancellationToken).ConfigureAwait(false);
        if (n != raw)
        {
            throw new IOException($"Staged chunk {index} in '{Path}' is shorter than its record says ({n} of {raw} bytes).");
        }

        return raw;
    }

    /// <summary>Appends a verified chunk (one aligned write of its record block and padded data).</summary>
    public async ValueTask AppendAsync(byte[] hash, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var length = (int)RecordLength(data.Length);
        if (_scratch is null || _scratch.Length - _scratchOffset < length)
        {
            // Pinned, so the block-aligned window found once stays aligned.
            _scratch = GC.AllocateUninitializedArray<byte>(length + Block, pinned: true);
            var address = (long)Marshal.UnsafeAddrOfPinnedArrayElement(_scratch, 0);
            _scratchOffset = (int)((Block - (address % Block)) % Block);
        }

        var frame = _scratch.AsMemory(_scratchOffset, length);
        var span = frame.Span;
        span[..Block].Clear();
        BinaryPrimitives.WriteInt32LittleEndian(span, data.Length);
        hash.CopyTo(span[4..]);
        data.Span.CopyTo(span[Block..]);
        span[(Block + data.Length)..].Clear();
        await RandomAccess.WriteAsync(_direct ?? _handle, frame, _end, cancellationToken).ConfigureAwait(false);
        _offsets.Add(_end);
        _hashes.Add(hash);
        _lengths.Add(data.Length);
        _end += length;
        _count = _hashes.Count;
    }

    /// <summary>
    /// Flushes what was appended so far to disk (fdatasync); the chunks it covers count as durable.
    /// Safe to call while the writer keeps appending (it covers at least the chunks appended before the call).
    /// </summary>
    public void FlushToDisk()
    {
        var covered = _count;
        RandomAccess.FlushToDisk(_handle);
        if (covered > _durable)
        {
            _durable = covered;
        }
    }

    public void Delete()
    {
        Dispose();
        File.Delete(Path);
    }

    public void Dispose()
    {
        _direct?.Dispose();
        _handle.Dispose();
    }

    /// <summary>Opens a write handle with <c>O_DIRECT</c> (Linux x64/x86/Arm64/Arm); null where that is not possible.</summary>
    private static class DirectIo
    {
        private const int GetFlags = 3;
        private const int SetFlags = 4;

        public static SafeFileHandle? TryOpen(string path)
        {
            var flag = RuntimeInformation.ProcessArchitecture switch
            {
                Architecture.X64 or Architecture.X86 => 0x4000,
                Architecture.Arm64 or Architecture.Arm => 0x10000,
                _ => 0,
            };
            if (!OperatingSystem.IsLinux() || flag == 0)
            {
                return null;
            }

            var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, FileOptions.Asynchronous);
            try
            {
                var flags = Libc.Fcntl(handle, GetFlags, 0);
                if (flags >= 0 && Libc.Fcntl(handle, SetFlags, flags | flag) == 0)
                {
                    return handle;
                }
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                // Not glibc/musl: buffered writes.
            }

            // The filesystem refuses O_DIRECT (tmpfs, some FUSE): buffered writes through the main handle.
            handle.Dispose();
            return null;
        }
    }
}

/// <summary>Where and why a staging file was cut when opened.</summary>
/// <param name="Chunk">Index of the first chunk dropped (it and everything after it are re-fetched).</param>
/// <param name="Reason">What was wrong with it.</param>
/// <param name="Bytes">Bytes dropped from the file.</param>
internal sealed record StagingDiscard(int Chunk, string Reason, long Bytes);
