using System.Numerics;
using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>
/// A node's static attributes packed into one <see cref="ulong"/>, so that online, public IP, architecture,
/// region and GPU model are checked together with one mask and compare:
/// bit 0 online, bit 1 public IP, bits 2-3 architecture, bits 4-5 highest bandwidth tier,
/// bits 8-21 uptime (basis points), bits 24-39 region id, bits 40-55 GPU model id (0 = none).
/// </summary>
internal static class NodeAttributes
{
    public const ulong OnlineBit = 1;
    public const ulong PublicIpBit = 2;
    public const int ArchShift = 2;
    public const int BandwidthShift = 4;
    public const int UptimeShift = 8;
    public const int RegionShift = 24;
    public const int GpuModelShift = 40;
    public const ulong ArchMask = 3UL << ArchShift;
    public const ulong RegionMask = 0xFFFFUL << RegionShift;
    public const ulong GpuModelMask = 0xFFFFUL << GpuModelShift;
    public const int MaxLabelId = 0xFFFE;

    /// <summary>An id no node carries: a request naming an unknown region or GPU model matches nothing.</summary>
    public const int UnknownLabelId = 0xFFFF;

    public static ulong Pack(bool online, bool publicIp, CpuArchitecture arch, BandwidthTier maxBandwidth, int uptime, int region, int gpuModel) =>
        (online ? OnlineBit : 0)
        | (publicIp ? PublicIpBit : 0)
        | ((ulong)arch << ArchShift)
        | ((ulong)maxBandwidth << BandwidthShift)
        | ((ulong)uptime << UptimeShift)
        | ((ulong)region << RegionShift)
        | ((ulong)gpuModel << GpuModelShift);

    /// <summary>Index sub-keys: architecture x public IP.</summary>
    public const int SubKeys = 4;

    /// <summary>The index sub-key of a node: <c>architecture * 2 + publicIp</c>.</summary>
    public static int SubKey(ulong a) => (int)((a >> 1) & 3);

    public static bool IsOnline(ulong a) => (a & OnlineBit) != 0;

    public static bool HasPublicIp(ulong a) => (a & PublicIpBit) != 0;

    public static CpuArchitecture Architecture(ulong a) => (CpuArchitecture)((a >> ArchShift) & 3);

    public static BandwidthTier MaxBandwidth(ulong a) => (BandwidthTier)((a >> BandwidthShift) & 3);

    public static int Uptime(ulong a) => (int)((a >> UptimeShift) & 0x3FFF);

    public static int Region(ulong a) => (int)((a >> RegionShift) & 0xFFFF);

    public static int GpuModel(ulong a) => (int)((a >> GpuModelShift) & 0xFFFF);

    public static ulong WithOnline(ulong a, bool online) => online ? a | OnlineBit : a & ~OnlineBit;

    public static ulong WithGpuModel(ulong a, int model) => (a & ~GpuModelMask) | ((ulong)model << GpuModelShift);
}

/// <summary>Interned names (regions, tags, GPU models) with dense ids from 1; lookups ignore case and allocate nothing.</summary>
internal sealed class LabelTable(string field)
{
    private readonly Dictionary<string, int> _ids = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<string> _names = [string.Empty];

    public int Count => _names.Count;

    public string Name(int id) => _names[id];

    public bool TryGet(string name, out int id) => _ids.TryGetValue(name, out id);

    public int GetOrAdd(string name)
    {
        if (_ids.TryGetValue(name, out var id))
        {
            return id;
        }

        if (_names.Count >= NodeAttributes.UnknownLabelId)
        {
            throw Validate.Fail(field, $"more than {NodeAttributes.MaxLabelId} distinct values; '{name}' cannot be added.");
        }

        id = _names.Count;
        _names.Add(name);
        _ids.Add(name, id);
        return id;
    }
}

/// <summary>A growable bit set over node slots.</summary>
internal sealed class SlotBitset
{
    private ulong[] _words = new ulong[4];

    public bool Contains(int slot)
    {
        var w = slot >> 6;
        return (uint)w < (uint)_words.Length && (_words[w] & (1UL << slot)) != 0;
    }

    public void Set(int slot, bool value)
    {
        var w = slot >> 6;
        if (w >= _words.Length)
        {
            if (!value)
            {
                return;
            }

            Array.Resize(ref _words, Math.Max(w + 1, _words.Length * 2));
        }

        if (value)
        {
            _words[w] |= 1UL << slot;
        }
        else
        {
            _words[w] &= ~(1UL << slot);
        }
    }

    public int Count()
    {
        var n = 0;
        foreach (var w in _words)
        {
            n += BitOperations.PopCount(w);
        }

        return n;
    }
}
