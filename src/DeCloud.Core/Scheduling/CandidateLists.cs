using System.Numerics;

namespace DeCloud.Core.Scheduling;

/// <summary>
/// The precomputed candidate ordering of one index family (all nodes, per region, GPU nodes, per GPU model):
/// for every key, online nodes sit in buckets by free CPU (exact below 512 twelfths, then 64 buckets per
/// power of two, so a bucket spans at most 1.6 %), each bucket an intrusive doubly linked list, with a bit
/// per non-empty bucket. Bin-pack walks buckets upwards from the request's own size, spread walks
/// downwards from the top; nodes too small on CPU are never visited. Moving a node costs O(1).
/// </summary>
internal sealed class CandidateLists
{
    public const int BucketCount = 512 + (15 * 64);
    private const int WordsPerKey = (BucketCount + 63) / 64;

    private int[] _next = [];
    private int[] _prev = [];
    private int[] _heads = [];
    private ulong[] _nonEmpty = [];
    private int[] _counts = [];

    public static int Bucket(long freeTwelfths)
    {
        if (freeTwelfths < 512)
        {
            return freeTwelfths <= 0 ? 0 : (int)freeTwelfths;
        }

        var octave = 63 - BitOperations.LeadingZeroCount((ulong)freeTwelfths);
        var bucket = 512 + ((octave - 9) * 64) + (int)((freeTwelfths >> (octave - 6)) & 63);
        return Math.Min(bucket, BucketCount - 1);
    }

    public int Count(int key) => key < _counts.Length ? _counts[key] : 0;

    public int Next(int slot) => _next[slot];

    public int Head(int key, int bucket) => _heads[(key * BucketCount) + bucket];

    public void EnsureSlots(int slots)
    {
        if (_next.Length < slots)
        {
            var n = Math.Max(slots, _next.Length * 2);
            Array.Resize(ref _next, n);
            Array.Resize(ref _prev, n);
        }
    }

    public void EnsureKeys(int keys)
    {
        if (_counts.Length >= keys)
        {
            return;
        }

        var old = _counts.Length;
        var n = Math.Max(keys, Math.Max(4, old * 2));
        Array.Resize(ref _counts, n);
        Array.Resize(ref _nonEmpty, n * WordsPerKey);
        Array.Resize(ref _heads, n * BucketCount);
        _heads.AsSpan(old * BucketCount).Fill(-1);
    }

    public void Link(int slot, int key, int bucket)
    {
        var h = (key * BucketCount) + bucket;
        var head = _heads[h];
        _next[slot] = head;
        _prev[slot] = -1;
        if (head >= 0)
        {
            _prev[head] = slot;
        }

        _heads[h] = slot;
        _nonEmpty[(key * WordsPerKey) + (bucket >> 6)] |= 1UL << bucket;
        _counts[key]++;
    }

    public void Unlink(int slot, int key, int bucket)
    {
        var next = _next[slot];
        var prev = _prev[slot];
        if (prev >= 0)
        {
            _next[prev] = next;
        }
        else
        {
            var h = (key * BucketCount) + bucket;
            _heads[h] = next;
            if (next < 0)
            {
                _nonEmpty[(key * WordsPerKey) + (bucket >> 6)] &= ~(1UL << bucket);
            }
        }

        if (next >= 0)
        {
            _prev[next] = prev;
        }

        _counts[key]--;
    }

    /// <summary>The first non-empty bucket at or above <paramref name="from"/>, or -1.</summary>
    public int NextNonEmpty(int key, int from)
    {
        if (from >= BucketCount)
        {
            return -1;
        }

        var baseWord = key * WordsPerKey;
        var w = from >> 6;
        var word = _nonEmpty[baseWord + w] & (ulong.MaxValue << from);
        while (true)
        {
            if (word != 0)
            {
                return (w << 6) + BitOperations.TrailingZeroCount(word);
            }

            if (++w == WordsPerKey)
            {
                return -1;
            }

            word = _nonEmpty[baseWord + w];
        }
    }

    /// <summary>The last non-empty bucket at or below <paramref name="from"/>, or -1.</summary>
    public int PrevNonEmpty(int key, int from)
    {
        if (from < 0)
        {
            return -1;
        }

        var baseWord = key * WordsPerKey;
        var w = from >> 6;
        var shift = 63 - (from & 63);
        var word = _nonEmpty[baseWord + w] & (ulong.MaxValue >> shift);
        while (true)
        {
            if (word != 0)
            {
                return (w << 6) + 63 - BitOperations.LeadingZeroCount(word);
            }

            if (--w < 0)
            {
                return -1;
            }

            word = _nonEmpty[baseWord + w];
        }
    }
}
