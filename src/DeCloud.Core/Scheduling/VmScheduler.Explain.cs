using System.Globalization;
using System.Numerics;
using System.Text;
using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>
/// Refusal explanations: one pass over the inventory computing, per node, which filters fail on its free
/// resources and which would fail even if it were empty. From these: first-failing-filter counts (summing
/// to the inventory size), single-filter near misses with the smallest shortfall, and the first filter
/// that no node satisfies at all ("no online aarch64 node has a GPU").
/// </summary>
public sealed partial class VmScheduler
{
    // Bit order = evaluation order (cheap first) = the order of the structural sentence.
    private const int KOnline = 0, KTarget = 1, KExcluded = 2, KArch = 3, KRegion = 4, KPublicIp = 5, KBandwidth = 6,
        KGpuModel = 7, KGpus = 8, KUptime = 9, KTags = 10, KCpu = 11, KMemory = 12, KStorage = 13, KPrice = 14, KCustom = 15;

    private static readonly string[] BuiltInNames =
        ["online", "target-node", "excluded", "architecture", "region", "public-ip", "bandwidth-tier", "gpu-model", "gpus", "uptime", "tags", "cpu", "memory", "storage", "price"];

    private string KindName(int k) => k < KCustom ? BuiltInNames[k] : _filters[k - KCustom].Name;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private PlacementRefusal Explain(PlacementQuery q, int gangMember)
    {
        var inv = _inv;
        var kinds = KCustom + _filters.Length;
        var firstFail = new int[kinds];
        var single = new int[kinds];
        var minShort = new long[kinds];
        var minCount = new int[kinds];
        var maxShort = new long[kinds];
        Array.Fill(minShort, long.MaxValue);
        var capLowest = new int[kinds + 1];
        var regionMiss = new Dictionary<int, int>();
        var modelMiss = new Dictionary<int, int>();
        var archMiss = new int[4];
        var live = 0;
        var fitting = 0;
        var targetMask = q.TargetSlot >= 0 ? 1UL << KTarget : 0;

        for (var s = 0; s < inv.SlotCount; s++)
        {
            if (!inv.Live[s])
            {
                continue;
            }

            live++;
            var attr = AttributeFailures(q, s);
            var free = attr;
            var cap = attr;
            if (inv.FreeCpu[s] < q.Cpu) { free |= 1UL << KCpu; }
            if (inv.FreeMem[s] < q.Mem) { free |= 1UL << KMemory; }
            if (inv.FreeSto[s] < q.Sto) { free |= 1UL << KStorage; }
            if (inv.FreeGpu[s] < q.Gpu) { free |= 1UL << KGpus; }
            if (inv.CapCpu[s] < q.Cpu) { cap |= 1UL << KCpu; }
            if (inv.CapMem[s] < q.Mem) { cap |= 1UL << KMemory; }
            if (inv.CapSto[s] < q.Sto) { cap |= 1UL << KStorage; }
            if (inv.CapGpu[s] < q.Gpu) { cap |= 1UL << KGpus; }
            if (q.TargetSlot >= 0 && s != q.TargetSlot) { free |= 1UL << KTarget; }
            if (q.ExcludeEpoch != 0 && inv.Mark[s] == q.ExcludeEpoch) { free |= 1UL << KExcluded; }

            if (free == 0)
            {
                fitting++;
            }
            else
            {
                firstFail[BitOperations.TrailingZeroCount(free)]++;
            }

            capLowest[cap == 0 ? kinds : BitOperations.TrailingZeroCount(cap)]++;

            var near = free & ~targetMask;
            if (free != 0 && near == 0)
            {
                single[KTarget]++;
            }
            else if (near != 0 && BitOperations.IsPow2(near))
            {
                var k = BitOperations.TrailingZeroCount(near);
                single[k]++;
                var shortfall = Shortfall(q, s, k);
                if (shortfall < minShort[k]) { minShort[k] = shortfall; minCount[k] = 1; }
                else if (shortfall == minShort[k]) { minCount[k]++; }
                maxShort[k] = Math.Max(maxShort[k], shortfall);
                var a = inv.Attr[s];
                if (k == KRegion) { CollectionsMarshalIncrement(regionMiss, NodeAttributes.Region(a)); }
                if (k == KGpuModel) { CollectionsMarshalIncrement(modelMiss, NodeAttributes.GpuModel(a)); }
                if (k == KArch) { archMiss[(int)NodeAttributes.Architecture(a)]++; }
            }
        }

        var rejections = new List<FilterRejection>(kinds);
        for (var k = 0; k < kinds; k++)
        {
            if (firstFail[k] > 0)
            {
                rejections.Add(new FilterRejection(KindName(k), firstFail[k]));
            }
        }

        var where = q.Request.Region is { } rg ? " in " + rg : string.Empty;
        var misses = new List<NearMiss>();
        for (var k = 0; k < kinds; k++)
        {
            if (single[k] > 0)
            {
                misses.Add(NearMissOf(q, k, single[k], minShort[k], minCount[k], maxShort[k], where, regionMiss, modelMiss, archMiss));
            }
        }

        misses.Sort((a, b) => a.Nodes != b.Nodes ? b.Nodes.CompareTo(a.Nodes) : string.CompareOrdinal(a.Filter, b.Filter));
        if (misses.Count > _options.NearMissLimit)
        {
            misses.RemoveRange(_options.NearMissLimit, misses.Count - _options.NearMissLimit);
        }

        var structural = Structural(q, live, kinds, capLowest);
        var vm = q.Request.VmId;
        var prefix = gangMember >= 0 ? $"Gang member {gangMember} (VM {vm})" : $"VM {vm}";
        var what = Describe(q);
        string summary;
        if (q.TargetSlot >= 0 && fitting == 0)
        {
            summary = $"{prefix} ({what}) cannot run on target node {inv.Ids[q.TargetSlot]}: {TargetReasons(q, q.TargetSlot)}.";
        }
        else if (structural is not null)
        {
            summary = $"{prefix} ({what}) cannot be placed: {structural}.";
        }
        else if (fitting > 0)
        {
            summary = $"{prefix} ({what}): {Plural(fitting, "node")} pass every filter" + (gangMember >= 0 ? " but are taken by larger members of the gang." : ".");
        }
        else
        {
            var capable = capLowest[kinds];
            summary = $"{prefix} ({what}) cannot be placed now: {Plural(capable, "node")} could host it when empty, but none has enough free capacity"
                + (misses.Count > 0 ? $"; nearest: {misses[0].Message}." : ".");
        }

        return new PlacementRefusal(summary, live, rejections, misses, structural, gangMember);
    }

    private static void CollectionsMarshalIncrement(Dictionary<int, int> d, int key) => d[key] = d.GetValueOrDefault(key) + 1;

    /// <summary>Filters that depend only on the node's attributes and prices, not on its free resources.</summary>
    private ulong AttributeFailures(PlacementQuery q, int s)
    {
        var inv = _inv;
        var a = inv.Attr[s];
        var m = 0UL;
        if (!NodeAttributes.IsOnline(a)) { m |= 1UL << KOnline; }
        if ((q.AttrMask & NodeAttributes.ArchMask) != 0 && (a & NodeAttributes.ArchMask) != (q.AttrValue & NodeAttributes.ArchMask)) { m |= 1UL << KArch; }
        if ((q.AttrMask & NodeAttributes.RegionMask) != 0 && (a & NodeAttributes.RegionMask) != (q.AttrValue & NodeAttributes.RegionMask)) { m |= 1UL << KRegion; }
        if ((q.AttrMask & NodeAttributes.PublicIpBit) != 0 && !NodeAttributes.HasPublicIp(a)) { m |= 1UL << KPublicIp; }
        if ((int)NodeAttributes.MaxBandwidth(a) < q.MinBandwidth) { m |= 1UL << KBandwidth; }
        if ((q.AttrMask & NodeAttributes.GpuModelMask) != 0 && (a & NodeAttributes.GpuModelMask) != (q.AttrValue & NodeAttributes.GpuModelMask)) { m |= 1UL << KGpuModel; }
        if (NodeAttributes.Uptime(a) < q.MinUptime) { m |= 1UL << KUptime; }
        for (var i = 0; i < q.TagCount; i++)
        {
            if (!inv.HasTagId(s, q.TagIds[i]))
            {
                m |= 1UL << KTags;
                break;
            }
        }

        if (q.HasCap && ResourcePrice(s) > q.ResourceCap) { m |= 1UL << KPrice; }
        for (var i = 0; i < _filters.Length; i++)
        {
            if (!_filters[i].Accepts(new NodeView(inv, s), q.Request))
            {
                m |= 1UL << (KCustom + i);
            }
        }

        return m;
    }

    private long Shortfall(PlacementQuery q, int s, int k)
    {
        var inv = _inv;
        return k switch
        {
            KCpu => q.Cpu - inv.FreeCpu[s],
            KMemory => q.Mem - inv.FreeMem[s],
            KStorage => q.Sto - inv.FreeSto[s],
            KGpus => q.Gpu - inv.FreeGpu[s],
            KUptime => q.MinUptime - NodeAttributes.Uptime(inv.Attr[s]),
            KBandwidth => q.MinBandwidth - (int)NodeAttributes.MaxBandwidth(inv.Attr[s]),
            KPrice => RequestValidator.TotalPrice(ResourcePrice(s), q.Request.BandwidthTier, _options) - (q.Request.MaxHourlyPriceMicroUsdc ?? 0),
            _ => 0,
        };
    }

    private NearMiss NearMissOf(PlacementQuery q, int k, int count, long min, int atMin, long max, string where,
        Dictionary<int, int> regionMiss, Dictionary<int, int> modelMiss, int[] archMiss)
    {
        var name = KindName(k);
        string More(Func<long, string> fmt) => count > atMin ? $" ({count} with up to {fmt(max)} less)" : string.Empty;
        switch (k)
        {
            case KCpu:
                string Points(long tw) => Plural((tw + q.TwelfthsPerPoint - 1) / q.TwelfthsPerPoint, q.Request.QualityTier + " compute point");
                return new NearMiss(name, atMin, min, $"{Plural(atMin, "node")}{where} would fit with {Points(min)} fewer{More(Points)}");
            case KMemory:
                return new NearMiss(name, atMin, min, $"{Plural(atMin, "node")}{where} would fit with {MiB(min)} less memory{More(MiB)}");
            case KStorage:
                return new NearMiss(name, atMin, min, $"{Plural(atMin, "node")}{where} would fit with {min} GiB less storage{More(x => x + " GiB")}");
            case KGpus:
                return new NearMiss(name, atMin, min, $"{Plural(atMin, "node")}{where} would fit with {Plural(min, "GPU")} fewer");
            case KPrice:
                return new NearMiss(name, atMin, min, $"{Plural(atMin, "node")}{where} would fit with a price cap {min} micro-USDC/h higher{More(x => x + " micro-USDC/h")}");
            case KUptime:
                return new NearMiss(name, atMin, min, $"{Plural(atMin, "node")}{where} would fit with a minimum uptime {(min / 100.0).ToString("F2", CultureInfo.InvariantCulture)} percentage points lower");
            case KBandwidth:
                return new NearMiss(name, count, min, $"{Plural(count, "node")}{where} would fit with a bandwidth tier {min} step(s) lower than {q.Request.BandwidthTier}");
            case KRegion:
                var (region, inRegion) = Top(regionMiss);
                return new NearMiss(name, inRegion, 0, $"{Plural(inRegion, "node")} in {_inv.Regions.Name(region)} would fit" + (count > inRegion ? $" ({count} outside {q.Request.Region} in all)" : string.Empty));
            case KArch:
                var arch = archMiss[0] >= archMiss[1] ? CpuArchitecture.X86_64 : CpuArchitecture.Aarch64;
                return new NearMiss(name, count, 0, $"{Plural(count, arch.ToName() + " node")}{where} would fit");
            case KGpuModel:
                var (model, withModel) = Top(modelMiss);
                var modelName = model == 0 ? "unnamed" : _inv.GpuModels.Name(model);
                return new NearMiss(name, withModel, 0, $"{Plural(withModel, "node")}{where} with {modelName} GPUs would fit");
            case KPublicIp:
                return new NearMiss(name, count, 0, $"{Plural(count, "relayed node")}{where} would fit if the VM accepts a relayed node");
            case KOnline:
                return new NearMiss(name, count, 0, $"{Plural(count, "offline node")}{where} would fit once back online");
            case KTags:
                return new NearMiss(name, count, 0, $"{Plural(count, "node")}{where} would fit without the required tags");
            case KTarget:
                return new NearMiss(name, count, 0, $"{Plural(count, "other node")} would fit if the scheduler may choose");
            case KExcluded:
                return new NearMiss(name, count, 0, $"{Plural(count, "node")}{where} would fit but already host another member of the gang or are the node being drained");
            default:
                return new NearMiss(name, count, 0, $"{Plural(count, "node")}{where} would fit but filter '{name}' rejects them");
        }
    }

    private static (int Key, int Count) Top(Dictionary<int, int> counts)
    {
        var best = (Key: 0, Count: 0);
        foreach (var (key, n) in counts)
        {
            if (n > best.Count || (n == best.Count && key < best.Key))
            {
                best = (key, n);
            }
        }

        return best;
    }

    /// <summary>The first requirement that no node meets even when empty, as a sentence; null when some node could.</summary>
    private string? Structural(PlacementQuery q, int live, int kinds, int[] capLowest)
    {
        if (live == 0)
        {
            return "the inventory has no nodes";
        }

        var passing = live;
        var adjectives = new List<string>();
        var phrases = new List<string>();
        for (var k = 0; k < kinds; k++)
        {
            passing -= capLowest[k];
            if (k is KTarget or KExcluded || !Constrained(q, k))
            {
                continue;
            }

            if (passing == 0)
            {
                var sb = new StringBuilder("no ");
                foreach (var adj in adjectives)
                {
                    sb.Append(adj).Append(' ');
                }

                sb.Append("node");
                foreach (var p in phrases)
                {
                    sb.Append(' ').Append(p);
                }

                return sb.Append(' ').Append(Predicate(q, k)).ToString();
            }

            switch (k)
            {
                case KOnline: adjectives.Add("online"); break;
                case KArch: adjectives.Add(q.Request.Architecture!.Value.ToName()); break;
                case KPublicIp: adjectives.Add("public-IP"); break;
                case KRegion: phrases.Add("in " + q.Request.Region); break;
                case KBandwidth: phrases.Add($"offering {q.Request.BandwidthTier} bandwidth"); break;
                case KGpuModel: phrases.Add($"with {q.Request.Resources.GpuModel} GPUs"); break;
                case KGpus when q.GpuModelId == 0: phrases.Add(q.Gpu == 1 ? "with a GPU" : $"with {q.Gpu} GPUs"); break;
                case KUptime: phrases.Add($"with {Percent(q.MinUptime)} uptime"); break;
                case KTags: phrases.Add("tagged " + string.Join(", ", q.Request.RequiredTags!)); break;
                default: break;
            }
        }

        return null;
    }

    private bool Constrained(PlacementQuery q, int k) => k switch
    {
        KArch => q.Request.Architecture is not null,
        KRegion => q.Request.Region is not null,
        KPublicIp => q.Request.RequiresPublicIp,
        KBandwidth => q.MinBandwidth > 0,
        KGpuModel => q.Request.Resources.GpuModel is not null,
        KGpus => q.Gpu > 0,
        KUptime => q.MinUptime > 0,
        KTags => q.TagCount > 0,
        KPrice => q.HasCap,
        _ => true,
    };

    private string Predicate(PlacementQuery q, int k)
    {
        var r = q.Request;
        return k switch
        {
            KOnline => "is online",
            KArch => "is " + r.Architecture!.Value.ToName(),
            KRegion => "is in " + r.Region,
            KPublicIp => "has a public IP",
            KBandwidth => $"offers the {r.BandwidthTier} bandwidth tier",
            KGpuModel => $"has {r.Resources.GpuModel} GPUs",
            KGpus => q.Gpu == 1 ? "has a GPU" : $"has {q.Gpu} GPUs",
            KUptime => $"has {Percent(q.MinUptime)} uptime or more",
            KTags => "has the tags " + string.Join(", ", r.RequiredTags!),
            KCpu => $"has room for {Plural(r.Resources.ComputePoints, r.QualityTier + " compute point")}",
            KMemory => $"has {MiB(q.Mem)} of memory",
            KStorage => $"has {q.Sto} GiB of storage",
            KPrice => $"costs at most {r.MaxHourlyPriceMicroUsdc} micro-USDC/h for this VM",
            _ => $"is accepted by filter '{KindName(k)}'",
        };
    }

    /// <summary>Every filter the target node fails, with its own values.</summary>
    private string TargetReasons(PlacementQuery q, int s)
    {
        var inv = _inv;
        var a = inv.Attr[s];
        var m = AttributeFailures(q, s);
        if (inv.FreeCpu[s] < q.Cpu) { m |= 1UL << KCpu; }
        if (inv.FreeMem[s] < q.Mem) { m |= 1UL << KMemory; }
        if (inv.FreeSto[s] < q.Sto) { m |= 1UL << KStorage; }
        if (inv.FreeGpu[s] < q.Gpu) { m |= 1UL << KGpus; }
        if (q.ExcludeEpoch != 0 && inv.Mark[s] == q.ExcludeEpoch) { m |= 1UL << KExcluded; }
        var reasons = new List<string>();
        for (; m != 0; m &= m - 1)
        {
            var k = BitOperations.TrailingZeroCount(m);
            reasons.Add(k switch
            {
                KOnline => "online: the node is offline",
                KExcluded => "excluded: the node already hosts another member of the gang",
                KArch => $"architecture: the node is {NodeAttributes.Architecture(a).ToName()}, not {q.Request.Architecture!.Value.ToName()}",
                KRegion => $"region: the node is in {inv.RegionName(s)}, not {q.Request.Region}",
                KPublicIp => "public-ip: the node is relayed (no public IP)",
                KBandwidth => $"bandwidth-tier: the node offers at most {NodeAttributes.MaxBandwidth(a)}, not {q.Request.BandwidthTier}",
                KGpuModel => $"gpu-model: the node has {inv.GpuModelName(s) ?? "no named"} GPUs, not {q.Request.Resources.GpuModel}",
                KGpus => $"gpus: needs {q.Gpu}, {inv.FreeGpu[s]} free of {inv.CapGpu[s]}",
                KUptime => $"uptime: the node has {Percent(NodeAttributes.Uptime(a))}, the VM needs {Percent(q.MinUptime)}",
                KTags => "tags: the node lacks " + string.Join(", ", MissingTags(q, s)),
                KCpu => $"cpu: needs {q.Cpu} twelfths ({r(q)}), {inv.FreeCpu[s]} free of {inv.CapCpu[s]}",
                KMemory => $"memory: needs {MiB(q.Mem)}, {MiB(inv.FreeMem[s])} free of {MiB(inv.CapMem[s])}",
                KStorage => $"storage: needs {q.Sto} GiB, {inv.FreeSto[s]} GiB free of {inv.CapSto[s]} GiB",
                KPrice => $"price: the node asks {RequestValidator.TotalPrice(ResourcePrice(s), q.Request.BandwidthTier, _options)} micro-USDC/h, the cap is {q.Request.MaxHourlyPriceMicroUsdc}",
                _ => $"{KindName(k)}: rejected by this filter",
            });
        }

        return string.Join("; ", reasons);

        static string r(PlacementQuery q) => $"{q.Request.Resources.ComputePoints} {q.Request.QualityTier} points";
    }

    private IEnumerable<string> MissingTags(PlacementQuery q, int s)
    {
        foreach (var tag in q.Request.RequiredTags ?? [])
        {
            if (!_inv.HasTag(s, tag))
            {
                yield return tag;
            }
        }
    }

    private static string Describe(PlacementQuery q)
    {
        var r = q.Request.Resources;
        var s = $"{r.ComputePoints} {q.Request.QualityTier} points, {MiB(r.MemoryMiB)} memory, {r.StorageGiB} GiB storage";
        return r.Gpus > 0 ? s + $", {Plural(r.Gpus, "GPU")}" + (r.GpuModel is null ? string.Empty : $" ({r.GpuModel})") : s;
    }

    private static string MiB(long mib) => mib % 1024 == 0 ? $"{mib / 1024} GiB" : $"{mib} MiB";

    private static string Percent(int basisPoints) => (basisPoints / 100.0).ToString("0.##", CultureInfo.InvariantCulture) + " %";

    private static string Plural(long n, string noun) => n == 1 ? $"1 {noun}" : $"{n} {noun}s";
}
