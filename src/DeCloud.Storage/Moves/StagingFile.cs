using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;

namespace DeCloud.Storage.Moves;

/// <summary>
/// Verified chunks of one send stream kept on the destination, so an interrupted transfer resumes
/// from the last verified chunk. Layout: a 44-byte header (magic, snapshot UUID, parent UUID, chunk
/// size) naming the stream, then records of raw length u32, XxHash128 (16 bytes), data. Opening
/// re-verifies every record and cuts the file at the first one that is short or fails its hash.
/// </summary>
internal sealed class StagingFile : IDisposable
{
    private const int HeaderSize = 8 + 16 + 16 + 4;
    private const int RecordHeader = 4 + WireFormat.HashSize;
    private static readonly byte[] Magic = "DCSSTAGE"u8.ToArray();
    private readonly SafeFileHandle _handle;
    private readonly List<long> _offsets = [];
    private readonly List<byte[]> _hashes = [];
    private long _end;

    private StagingFile(string path, SafeFileHandle handle)
    {
        Path = path;
        _handle = handle;
    }

    public string Path { get; }

    public int Count => _hashes.Count;

    public IReadOnlyList<byte[]> Hashes => _hashes;

    public static StagingFile Open(string path, Guid snapshot, Guid parent, int chunkSize)
    {
        var handle = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, FileOptions.Asynchronous);
        var file = new StagingFile(path, handle);
        try
        {
            file.Scan(snapshot, parent, chunkSize);
        }
        catch
        {
            file.Dispose();
            throw;
        }

        return file;
    }

    private void Scan(Guid snapshot, Guid parent, int chunkSize)
    {
        Span<byte> header = stackalloc byte[HeaderSize];
        Magic.CopyTo(header);
        snapshot.TryWriteBytes(header[8..]);
        parent.TryWriteBytes(header[24..]);
        BinaryPrimitives.WriteInt32LittleEndian(header[40..], chunkSize);
        Span<byte> existing = stackalloc byte[HeaderSize];
        var length = RandomAccess.GetLength(_handle);
        if (length < HeaderSize || RandomAccess.Read(_handle, existing, 0) != HeaderSize || !existing.SequenceEqual(header))
        {
            // Absent, or staged for another stream: start over.
            RandomAccess.SetLength(_handle, 0);
            RandomAccess.Write(_handle, header, 0);
            _end = HeaderSize;
            return;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(chunkSize + RecordHeader);
        try
        {
            long offset = HeaderSize;
            Span<byte> hash = stackalloc byte[WireFormat.HashSize];
            while (offset + RecordHeader <= length)
            {
                var n = RandomAccess.Read(_handle, buffer.AsSpan(0, RecordHeader), offset);
                var raw = BinaryPrimitives.ReadInt32LittleEndian(buffer);
                if (n != RecordHeader || raw <= 0 || raw > chunkSize || offset + RecordHeader + raw > length)
                {
                    break;
                }

                var data = buffer.AsSpan(RecordHeader, raw);
                if (RandomAccess.Read(_handle, data, offset + RecordHeader) != raw)
                {
                    break;
                }

                XxHash128.Hash(data, hash);
                if (!hash.SequenceEqual(buffer.AsSpan(4, WireFormat.HashSize)))
                {
                    break;
                }

                _offsets.Add(offset);
                _hashes.Add(hash.ToArray());
                offset += RecordHeader + raw;
            }

            _end = offset;
            RandomAccess.SetLength(_handle, offset);
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

        _end = count == 0 ? HeaderSize : _offsets[count];
        _offsets.RemoveRange(count, _offsets.Count - count);
        _hashes.RemoveRange(count, _hashes.Count - count);
        RandomAccess.SetLength(_handle, _end);
    }

    /// <summary>Reads staged chunk <paramref name="index"/> into <paramref name="buffer"/>; returns its length.</summary>
    public async ValueTask<int> ReadAsync(int index, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var offset = _offsets[index];
        var next = index + 1 < _offsets.Count ? _offsets[index + 1] : _end;
        var raw = (int)(next - offset - RecordHeader);
        await RandomAccess.ReadAsync(_handle, buffer[..raw], offset + RecordHeader, cancellationToken).ConfigureAwait(false);
        return raw;
    }

    /// <summary>Appends a verified chunk.</summary>
    public async ValueTask AppendAsync(ReadOnlyMemory<byte> hash, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var header = new byte[RecordHeader];
        BinaryPrimitives.WriteInt32LittleEndian(header, data.Length);
        hash.Span.CopyTo(header.AsSpan(4));
        await RandomAccess.WriteAsync(_handle, [header, data], _end, cancellationToken).ConfigureAwait(false);
        _offsets.Add(_end);
        _hashes.Add(hash.ToArray());
        _end += RecordHeader + data.Length;
    }

    public void Delete()
    {
        Dispose();
        File.Delete(Path);
    }

    public void Dispose() => _handle.Dispose();
}
