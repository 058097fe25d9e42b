using System.Runtime.CompilerServices;
using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>The decision: compile the request, walk the smallest applicable index in strategy order, score a few candidates.</summary>
public sealed partial class VmScheduler
{
    private readonly int[] _keys = new int[NodeAttributes.SubKeys];
    private readonly int[] _regionKeys = new int[NodeAttributes.SubKeys];

    /// <summary>Fills <see cref="_q"/> from a validated request. Runs under the lock (label tables change under it).</summary>
    private void Compile(PlacementRequest r, long resourceCap, bool ignoreTarget, int excludeEpoch)
    {
        var q = _q;
        q.Request = r;
        q.TwelfthsPerPoint = QualityTiers.TwelfthsPerPoint(r.QualityTier);
        q.Cpu = (long)r.Resources.ComputePoints * q.TwelfthsPerPoint;
        q.Mem = r.Resources.MemoryMiB;
        q.Sto = r.Resources.StorageGiB;
        q.Gpu = r.Resources.Gpus;
        q.MinBandwidth = (int)r.BandwidthTier;
        q.MinUptime = r.MinUptimeBasisPoints;
        q.Strategy = r.Strategy ?? _options.Strategy;
        q.HasCap = resourceCap >= 0 || r.MaxHourlyPriceMicroUsdc is not null;
        q.ResourceCap = resourceCap;
        q.Floor = _options.PriceFloor;
        q.ExcludeEpoch = excludeEpoch;

        var mask = NodeAttributes.OnlineBit;
        var value = NodeAttributes.OnlineBit;
        if (r.Architecture is { } arch)
        {
            mask |= NodeAttributes.ArchMask;
            value |= (ulong)arch << NodeAttributes.ArchShift;
        }

        if (r.RequiresPublicIp)
        {
            mask |= NodeAttributes.PublicIpBit;
            value |= NodeAttributes.PublicIpBit;
        }

        q.RegionId = 0;
        if (r.Region is { } region)
        {
            q.RegionId = Lookup(_inv.Regions, region, static (s) => Labels.Region(s));
            mask |= NodeAttributes.RegionMask;
            value |= (ulong)q.RegionId << NodeAttributes.RegionShift;
        }

        q.GpuModelId = 0;
        if (r.Resources.GpuModel is { } model)
        {
            q.GpuModelId = Lookup(_inv.GpuModels, model, static (s) => new Resources(1, 1, 1, 1, s).ValidateRequest());
            mask |= NodeAttributes.GpuModelMask;
            value |= (ulong)q.GpuModelId << NodeAttributes.GpuModelShift;
        }

        q.AttrMask = mask;
        q.AttrValue = value;

        q.TagCount = 0;
        if (r.RequiredTags is { } tags)
        {
            for (var i = 0; i < tags.Count; i++)
            {
                var tag = tags[i];
                ArgumentNullException.ThrowIfNull(tag);
                if (!_inv.TagTable.TryGet(tag, out var id))
                {
                    Labels.Tag(tag, "requiredTags"); // throws when malformed; an unknown tag matches no node
                    id = 0;
                }

                q.TagIds[q.TagCount++] = id;
            }
        }

        q.TargetSlot = -1;
        if (!ignoreTarget && r.TargetNode is { } target)
        {
            q.TargetSlot = !target.IsEmpty && _inv.TryGetSlot(target, out var t)
                ? t
                : throw Validate.Fail("targetNode", $"node '{target}' is not in the inventory; pick a registered node or leave targetNode empty.");
        }
    }

    private static int Lookup(LabelTable table, string name, Action<string> validate)
    {
        if (table.TryGet(name, out var id))
        {
            return id;
        }

        validate(name); // throws when malformed; a well-formed unknown name matches no node
        return NodeAttributes.UnknownLabelId;
    }

    /// <summary>Returns the chosen slot, or -1 when no node passes every filter.</summary>
    private int Choose(out double bestScore)
    {
        var q = _q;
        bestScore = 0;
        if (q.TargetSlot >= 0)
        {
            if (!Passes(q.TargetSlot))
            {
                return -1;
            }

            _candidates[0] = q.TargetSlot;
            return Best(1, out bestScore);
        }

        // The smallest applicable index: the GPU nodes (of the model), or the nodes of the region, or all
        // nodes; the last two split by architecture and public IP, so only matching sub-lists are walked.
        var lists = _inv.All;
        var keys = _keys;
        var keyCount = SubKeys(keys, 0);
        var total = Count(lists, keys, keyCount);
        if (q.Gpu > 0)
        {
            (lists, keys[0], keyCount) = q.GpuModelId != 0 ? (_inv.ByGpuModel, q.GpuModelId, 1) : (_inv.Gpu, 0, 1);
            total = lists.Count(keys[0]);
        }

        if (q.RegionId != 0)
        {
            var regionKeys = SubKeys(_regionKeys, q.RegionId * NodeAttributes.SubKeys);
            var regionTotal = Count(_inv.ByRegion, _regionKeys, regionKeys);
            if (regionTotal < total)
            {
                (lists, keys, keyCount, total) = (_inv.ByRegion, _regionKeys, regionKeys, regionTotal);
            }
        }

        if (total == 0)
        {
            return -1;
        }

        var limit = _options.CandidatesToScore;
        var n = 0;
        var start = CandidateLists.Bucket(q.Cpu);
        var binPack = q.Strategy == PlacementStrategy.BinPack;
        var b = binPack ? start : CandidateLists.BucketCount - 1;
        while (true)
        {
            // The next non-empty bucket in strategy order over all walked sub-lists.
            var next = -1;
            for (var k = 0; k < keyCount; k++)
            {
                var c = binPack ? lists.NextNonEmpty(keys[k], b) : lists.PrevNonEmpty(keys[k], b);
                if (c >= 0 && (next < 0 || (binPack ? c < next : c > next)))
                {
                    next = c;
                }
            }

            if (next < 0 || next < start)
            {
                break;
            }

            for (var k = 0; k < keyCount; k++)
            {
                for (var s = lists.Head(keys[k], next); s >= 0; s = lists.Next(s))
                {
                    if (Passes(s))
                    {
                        _candidates[n++] = s;
                        if (n == limit)
                        {
                            return Best(n, out bestScore);
                        }
                    }
                }
            }

            b = binPack ? next + 1 : next - 1;
        }

        return n == 0 ? -1 : Best(n, out bestScore);
    }

    /// <summary>The sub-keys (architecture x public IP) a request may use, added to <paramref name="baseKey"/>.</summary>
    private int SubKeys(int[] into, int baseKey)
    {
        var q = _q;
        var n = 0;
        for (var arch = 0; arch < 2; arch++)
        {
            if (q.Request.Architecture is { } a && (int)a != arch)
            {
                continue;
            }

            for (var pub = q.Request.RequiresPublicIp ? 1 : 0; pub < 2; pub++)
            {
                into[n++] = baseKey + (arch * 2) + pub;
            }
        }

        return n;
    }

    private static int Count(CandidateLists lists, int[] keys, int n)
    {
        var total = 0;
        for (var i = 0; i < n; i++)
        {
            total += lists.Count(keys[i]);
        }

        return total;
    }

    /// <summary>Every hard filter, cheapest first, on one node.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Passes(int s)
    {
        var q = _q;
        var inv = _inv;
        var a = inv.Attr[s];
        if ((a & q.AttrMask) != q.AttrValue
            || (int)((a >> NodeAttributes.BandwidthShift) & 3) < q.MinBandwidth
            || (int)((a >> NodeAttributes.UptimeShift) & 0x3FFF) < q.MinUptime
            || inv.FreeCpu[s] < q.Cpu
            || inv.FreeMem[s] < q.Mem
            || inv.FreeSto[s] < q.Sto
            || inv.FreeGpu[s] < q.Gpu
            || (q.ExcludeEpoch != 0 && inv.Mark[s] == q.ExcludeEpoch))
        {
            return false;
        }

        return PassesSlow(s);
    }

    /// <summary>Tags, price and third-party filters: the costlier checks, on nodes that passed the rest.</summary>
    private bool PassesSlow(int s)
    {
        var q = _q;
        for (var i = 0; i < q.TagCount; i++)
        {
            if (!_inv.HasTagId(s, q.TagIds[i]))
            {
                return false;
            }
        }

        if (q.HasCap && ResourcePrice(s) > q.ResourceCap)
        {
            return false;
        }

        foreach (var f in _filters)
        {
            if (!f.Accepts(new NodeView(_inv, s), q.Request))
            {
                return false;
            }
        }

        return true;
    }

    private long ResourcePrice(int s) => _inv.Prices[s].AtLeast(_q.Floor).PriceOf(_q.Cpu, _q.Mem, _q.Sto, _q.Gpu);

    /// <summary>Scores the first <paramref name="n"/> candidates; returns the best slot (ties broken by the seeded node hash).</summary>
    private int Best(int n, out double bestScore)
    {
        var minCost = long.MaxValue;
        if (_options.PriceWeight > 0)
        {
            for (var i = 0; i < n; i++)
            {
                _costs[i] = ResourcePrice(_candidates[i]);
                minCost = Math.Min(minCost, _costs[i]);
            }
        }

        var best = -1;
        bestScore = double.NegativeInfinity;
        var bestTie = ulong.MaxValue;
        for (var i = 0; i < n; i++)
        {
            var s = _candidates[i];
            var score = Score(s, i, minCost);
            var tie = Mix(_inv.TieKeys[s] ^ _options.Seed);
            if (score > bestScore || (score == bestScore && (tie < bestTie || (tie == bestTie && s < best))))
            {
                best = s;
                bestScore = score;
                bestTie = tie;
            }
        }

        return best;
    }

    private double Score(int s, int candidate, long minCost)
    {
        var q = _q;
        var inv = _inv;
        var total = 0.0;
        if (_options.PackWeight > 0)
        {
            var cpu = inv.CapCpu[s] > 0 ? (double)(inv.CapCpu[s] - inv.FreeCpu[s] + q.Cpu) / inv.CapCpu[s] : 1;
            var mem = inv.CapMem[s] > 0 ? (double)(inv.CapMem[s] - inv.FreeMem[s] + q.Mem) / inv.CapMem[s] : 1;
            var used = (cpu + mem) / 2;
            total += _options.PackWeight * (q.Strategy == PlacementStrategy.BinPack ? used : 1 - used);
        }

        if (_options.PriceWeight > 0)
        {
            var cost = _costs[candidate];
            total += _options.PriceWeight * (cost <= minCost ? 1.0 : (double)minCost / cost);
        }

        if (_options.ReputationWeight > 0)
        {
            total += _options.ReputationWeight * NodeAttributes.Uptime(inv.Attr[s]) / 10_000.0;
        }

        foreach (var scorer in _scorers)
        {
            total += scorer.Weight * Math.Clamp(scorer.Score(new NodeView(inv, s), q.Request), 0, 1);
        }

        return total;
    }

    /// <summary>SplitMix64 finalizer: a seeded permutation of node hashes.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>
    /// The naive baseline: every hard filter on every node, every feasible node scored. Same decisions on
    /// feasibility, exact best score; used by benchmarks and tests as the yardstick.
    /// </summary>
    internal PlacementResult PlaceFullScan(PlacementRequest request, PlacementMode mode = PlacementMode.Commit)
    {
        var cap = RequestValidator.Validate(request, _options, string.Empty);
        var hold = HoldTicks(mode, null);
        lock (_inv.Gate)
        {
            _inv.ExpireDue();
            Compile(request, cap, ignoreTarget: false, excludeEpoch: 0);
            if (_candidates.Length < _inv.SlotCount)
            {
                _candidates = new int[_inv.SlotCount];
                _costs = new long[_inv.SlotCount];
            }

            var n = 0;
            for (var s = 0; s < _inv.SlotCount; s++)
            {
                if (_inv.Live[s] && (_q.TargetSlot < 0 || _q.TargetSlot == s) && Passes(s))
                {
                    _candidates[n++] = s;
                }
            }

            if (n == 0)
            {
                return new PlacementResult(Explain(_q, -1), mode);
            }

            var slot = Best(n, out var score);
            return Reserve(slot, score, mode, hold);
        }
    }
}
