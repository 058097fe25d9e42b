using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>
/// The scheduler's view of the fleet: per-node capacity, holds and allocations in structure-of-arrays
/// form, with the indexes placement uses (free-CPU buckets per region and GPU model, tag bit sets).
/// The registry (or a host) keeps it in sync with <see cref="Upsert"/>, <see cref="SetCapacity"/>,
/// <see cref="SetOnline"/> and <see cref="Remove"/>. Thread-safe: one short lock guards every change,
/// so concurrent placements never double-book a node.
/// </summary>
public sealed partial class NodeInventory
{
    internal readonly Lock Gate = new();
    private readonly TimeProvider _time;
    private readonly Dictionary<NodeId, int> _slotOf = [];
    private readonly Stack<int> _freeSlots = new();
    private readonly LabelTable _regions = new("region");
    private readonly LabelTable _gpuModels = new("capacity.gpuModel");
    private readonly LabelTable _tags = new("tags");
    private readonly List<SlotBitset> _tagSets = [new SlotBitset()];

    // Node state, one entry per slot (structure of arrays).
    internal NodeId[] Ids = [];
    internal ulong[] Attr = [];
    internal long[] CapCpu = [], CapMem = [], CapSto = [];
    internal int[] CapGpu = [];
    internal long[] FreeCpu = [], FreeMem = [], FreeSto = [];
    internal int[] FreeGpu = [];
    internal long[] HeldCpu = [], HeldMem = [], HeldSto = [];
    internal int[] HeldGpu = [];
    internal NodePrice[] Prices = [];
    internal ulong[] TieKeys = [];
    internal int[][] NodeTags = [];
    internal bool[] Live = [];
    internal int[] BucketOf = [];
    internal int[] ResHead = [];
    internal int[] Mark = [];
    internal int SlotCount;

    // Candidate orderings. All and ByRegion are further split by architecture and public IP
    // (see NodeAttributes.SubKey), so those filters cost nothing while scanning.
    internal readonly CandidateLists All = new();
    internal readonly CandidateLists ByRegion = new();
    internal readonly CandidateLists Gpu = new();
    internal readonly CandidateLists ByGpuModel = new();

    /// <summary>Creates an empty inventory.</summary>
    /// <param name="timeProvider">The clock holds expire on; the system clock when null.</param>
    public NodeInventory(TimeProvider? timeProvider = null)
    {
        _time = timeProvider ?? TimeProvider.System;
        All.EnsureKeys(NodeAttributes.SubKeys);
        Gpu.EnsureKeys(1);
        InitReservations();
    }

    /// <summary>Nodes in the inventory, online or not.</summary>
    public int Count { get; private set; }

    /// <summary>Nodes that are online.</summary>
    public int OnlineCount { get; private set; }

    internal TimeProvider Time => _time;

    internal LabelTable Regions => _regions;

    internal LabelTable GpuModels => _gpuModels;

    internal LabelTable TagTable => _tags;

    /// <summary>Adds a node or replaces its attributes and capacity; its holds and allocations are kept.</summary>
    /// <exception cref="DeCloudValidationException">A field of <paramref name="node"/> is invalid; nothing changed.</exception>
    public void Upsert(NodeSnapshot node)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (node.Id.IsEmpty)
        {
            throw Validate.Fail("node.id", "must be a node id.");
        }

        node.Capacity.ValidateCapacity("node.capacity");
        var region = Labels.Region(node.Region, "node.region");
        var tags = Labels.Tags(node.Tags, "node.tags");
        Validate.Range(node.UptimeBasisPoints, 0, 10_000, "node.uptimeBasisPoints");
        node.Price.Validate("node.price");
        if (node.Architecture is not (CpuArchitecture.X86_64 or CpuArchitecture.Aarch64))
        {
            throw Validate.Fail("node.architecture", $"'{node.Architecture}' is not a supported architecture; expected X86_64 or Aarch64.");
        }

        if (!BandwidthTierCatalog.IsDefined(node.MaxBandwidthTier))
        {
            throw Validate.Fail("node.maxBandwidthTier", $"'{node.MaxBandwidthTier}' is not a bandwidth tier.");
        }

        lock (Gate)
        {
            var regionId = _regions.GetOrAdd(region);
            var modelId = node.Capacity is { Gpus: > 0, GpuModel: { } m } ? _gpuModels.GetOrAdd(m) : 0;
            var tagIds = new int[tags.Count];
            var i = 0;
            foreach (var t in tags)
            {
                tagIds[i++] = _tags.GetOrAdd(t);
                if (_tagSets.Count < _tags.Count)
                {
                    _tagSets.Add(new SlotBitset());
                }
            }

            if (!_slotOf.TryGetValue(node.Id, out var slot))
            {
                slot = NewSlot(node.Id);
            }
            else
            {
                Unindex(slot);
                if (NodeAttributes.IsOnline(Attr[slot]))
                {
                    OnlineCount--;
                }

                foreach (var old in NodeTags[slot])
                {
                    _tagSets[old].Set(slot, false);
                }
            }

            Attr[slot] = NodeAttributes.Pack(node.IsOnline, node.HasPublicIp, node.Architecture, node.MaxBandwidthTier, node.UptimeBasisPoints, regionId, modelId);
            Prices[slot] = node.Price;
            NodeTags[slot] = tagIds;
            foreach (var t in tagIds)
            {
                _tagSets[t].Set(slot, true);
            }

            ApplyCapacity(slot, node.Capacity);
            if (node.IsOnline)
            {
                OnlineCount++;
            }

            Index(slot);
        }
    }

    /// <summary>Changes a node's capacity (after a hardware change or a new benchmark); placements on it are kept.</summary>
    /// <exception cref="DeCloudValidationException">Unknown node or invalid capacity; nothing changed.</exception>
    public void SetCapacity(NodeId node, Resources capacity)
    {
        capacity.ValidateCapacity("capacity");
        lock (Gate)
        {
            var slot = SlotOf(node);
            var modelId = capacity is { Gpus: > 0, GpuModel: { } m } ? _gpuModels.GetOrAdd(m) : 0;
            Unindex(slot);
            Attr[slot] = NodeAttributes.WithGpuModel(Attr[slot], modelId);
            ApplyCapacity(slot, capacity);
            Index(slot);
        }
    }

    /// <summary>Marks a node online or offline; an offline node receives no work but keeps its reservations.</summary>
    /// <exception cref="DeCloudValidationException">Unknown node.</exception>
    public void SetOnline(NodeId node, bool online)
    {
        lock (Gate)
        {
            var slot = SlotOf(node);
            if (NodeAttributes.IsOnline(Attr[slot]) == online)
            {
                return;
            }

            Unindex(slot);
            Attr[slot] = NodeAttributes.WithOnline(Attr[slot], online);
            OnlineCount += online ? 1 : -1;
            Index(slot);
        }
    }

    /// <summary>Removes a node and drops its holds and allocations (releasing them later is a no-op).</summary>
    /// <returns>False when the node was not in the inventory.</returns>
    public bool Remove(NodeId node)
    {
        lock (Gate)
        {
            if (!_slotOf.Remove(node, out var slot))
            {
                return false;
            }

            Unindex(slot);
            while (ResHead[slot] >= 0)
            {
                FreeReservation(ResHead[slot]);
            }

            if (NodeAttributes.IsOnline(Attr[slot]))
            {
                OnlineCount--;
            }

            foreach (var t in NodeTags[slot])
            {
                _tagSets[t].Set(slot, false);
            }

            NodeTags[slot] = [];
            Attr[slot] = 0;
            Live[slot] = false;
            Ids[slot] = default;
            _freeSlots.Push(slot);
            Count--;
            return true;
        }
    }

    /// <summary>True when the node is in the inventory.</summary>
    public bool Contains(NodeId node)
    {
        lock (Gate)
        {
            return _slotOf.ContainsKey(node);
        }
    }

    /// <summary>The node's capacity, free, held and allocated amounts (expired holds are returned first).</summary>
    /// <exception cref="DeCloudValidationException">Unknown node.</exception>
    public NodeUsage GetUsage(NodeId node)
    {
        lock (Gate)
        {
            ExpireDue();
            var slot = SlotOf(node);
            var cap = CapacityOf(slot);
            var free = FreeOf(slot);
            var held = new ResourceAmounts(HeldCpu[slot], HeldMem[slot], HeldSto[slot], HeldGpu[slot]);
            var count = 0;
            for (var r = ResHead[slot]; r >= 0; r = _resNext[r])
            {
                count++;
            }

            return new NodeUsage(node, NodeAttributes.IsOnline(Attr[slot]), cap, free, held, cap - free - held, count);
        }
    }

    /// <summary>The holds and allocations on a node.</summary>
    /// <exception cref="DeCloudValidationException">Unknown node.</exception>
    public IReadOnlyList<ReservationInfo> GetReservations(NodeId node)
    {
        lock (Gate)
        {
            ExpireDue();
            var slot = SlotOf(node);
            var list = new List<ReservationInfo>();
            for (var r = ResHead[slot]; r >= 0; r = _resNext[r])
            {
                list.Add(InfoOf(r));
            }

            return list;
        }
    }

    /// <summary>Every node id, in no particular order.</summary>
    public IReadOnlyList<NodeId> GetNodeIds()
    {
        lock (Gate)
        {
            return [.. _slotOf.Keys];
        }
    }

    /// <summary>Returns the resources of every hold whose expiry has passed; returns how many expired.</summary>
    public int ExpireHolds()
    {
        lock (Gate)
        {
            return ExpireDue();
        }
    }

    internal int SlotOf(NodeId node) =>
        !node.IsEmpty && _slotOf.TryGetValue(node, out var slot)
            ? slot
            : throw Validate.Fail("nodeId", $"node '{node}' is not in the inventory.");

    internal bool TryGetSlot(NodeId node, out int slot) => _slotOf.TryGetValue(node, out slot);

    internal ResourceAmounts CapacityOf(int slot) => new(CapCpu[slot], CapMem[slot], CapSto[slot], CapGpu[slot]);

    internal ResourceAmounts FreeOf(int slot) => new(FreeCpu[slot], FreeMem[slot], FreeSto[slot], FreeGpu[slot]);

    internal string RegionName(int slot) => _regions.Name(NodeAttributes.Region(Attr[slot]));

    internal string? GpuModelName(int slot)
    {
        var m = NodeAttributes.GpuModel(Attr[slot]);
        return m == 0 ? null : _gpuModels.Name(m);
    }

    internal bool HasTag(int slot, string tag) => _tags.TryGet(tag, out var id) && _tagSets[id].Contains(slot);

    private int _epoch;

    /// <summary>A fresh mark for excluding nodes (gang siblings, a rescheduled node) via <see cref="Mark"/>.</summary>
    internal int NextEpoch() => ++_epoch;

    internal bool HasTagId(int slot, int tagId) => _tagSets[tagId].Contains(slot);

    internal int TagCount(int tagId) => _tagSets[tagId].Count();

    /// <summary>Moves a node to the bucket of its current free CPU, if that changed.</summary>
    internal void Reposition(int slot)
    {
        var old = BucketOf[slot];
        if (old < 0)
        {
            return;
        }

        var b = CandidateLists.Bucket(FreeCpu[slot]);
        if (b != old)
        {
            Unindex(slot);
            Index(slot);
        }
    }

    private int NewSlot(NodeId id)
    {
        int slot;
        if (_freeSlots.Count > 0)
        {
            slot = _freeSlots.Pop();
        }
        else
        {
            slot = SlotCount++;
            if (slot >= Ids.Length)
            {
                Grow(Math.Max(16, Ids.Length * 2));
            }
        }

        Ids[slot] = id;
        Live[slot] = true;
        BucketOf[slot] = -1;
        ResHead[slot] = -1;
        CapCpu[slot] = CapMem[slot] = CapSto[slot] = 0;
        FreeCpu[slot] = FreeMem[slot] = FreeSto[slot] = 0;
        HeldCpu[slot] = HeldMem[slot] = HeldSto[slot] = 0;
        CapGpu[slot] = FreeGpu[slot] = HeldGpu[slot] = 0;
        TieKeys[slot] = TieKey(id);
        _slotOf.Add(id, slot);
        Count++;
        return slot;
    }

    private void Grow(int n)
    {
        Array.Resize(ref Ids, n);
        Array.Resize(ref Attr, n);
        Array.Resize(ref CapCpu, n);
        Array.Resize(ref CapMem, n);
        Array.Resize(ref CapSto, n);
        Array.Resize(ref CapGpu, n);
        Array.Resize(ref FreeCpu, n);
        Array.Resize(ref FreeMem, n);
        Array.Resize(ref FreeSto, n);
        Array.Resize(ref FreeGpu, n);
        Array.Resize(ref HeldCpu, n);
        Array.Resize(ref HeldMem, n);
        Array.Resize(ref HeldSto, n);
        Array.Resize(ref HeldGpu, n);
        Array.Resize(ref Prices, n);
        Array.Resize(ref TieKeys, n);
        Array.Resize(ref NodeTags, n);
        Array.Resize(ref Live, n);
        Array.Resize(ref BucketOf, n);
        Array.Resize(ref ResHead, n);
        Array.Resize(ref Mark, n);
        All.EnsureSlots(n);
        ByRegion.EnsureSlots(n);
        Gpu.EnsureSlots(n);
        ByGpuModel.EnsureSlots(n);
    }

    /// <summary>Sets capacity, keeping what is held and allocated: free = capacity - held - allocated.</summary>
    private void ApplyCapacity(int slot, Resources capacity)
    {
        var cpu = (long)capacity.ComputePoints * QualityTiers.TwelfthsPerNodePoint;
        FreeCpu[slot] += cpu - CapCpu[slot];
        FreeMem[slot] += capacity.MemoryMiB - CapMem[slot];
        FreeSto[slot] += capacity.StorageGiB - CapSto[slot];
        FreeGpu[slot] += capacity.Gpus - CapGpu[slot];
        CapCpu[slot] = cpu;
        CapMem[slot] = capacity.MemoryMiB;
        CapSto[slot] = capacity.StorageGiB;
        CapGpu[slot] = capacity.Gpus;
    }

    private void Index(int slot)
    {
        var a = Attr[slot];
        if (!Live[slot] || !NodeAttributes.IsOnline(a))
        {
            BucketOf[slot] = -1;
            return;
        }

        var b = CandidateLists.Bucket(FreeCpu[slot]);
        BucketOf[slot] = b;
        var sub = NodeAttributes.SubKey(a);
        All.Link(slot, sub, b);
        ByRegion.EnsureKeys(_regions.Count * NodeAttributes.SubKeys);
        ByRegion.Link(slot, (NodeAttributes.Region(a) * NodeAttributes.SubKeys) + sub, b);
        if (CapGpu[slot] > 0)
        {
            Gpu.Link(slot, 0, b);
            var model = NodeAttributes.GpuModel(a);
            if (model > 0)
            {
                ByGpuModel.EnsureKeys(_gpuModels.Count);
                ByGpuModel.Link(slot, model, b);
            }
        }
    }

    private void Unindex(int slot)
    {
        var b = BucketOf[slot];
        if (b < 0)
        {
            return;
        }

        var a = Attr[slot];
        var sub = NodeAttributes.SubKey(a);
        All.Unlink(slot, sub, b);
        ByRegion.Unlink(slot, (NodeAttributes.Region(a) * NodeAttributes.SubKeys) + sub, b);
        if (CapGpu[slot] > 0)
        {
            Gpu.Unlink(slot, 0, b);
            var model = NodeAttributes.GpuModel(a);
            if (model > 0)
            {
                ByGpuModel.Unlink(slot, model, b);
            }
        }

        BucketOf[slot] = -1;
    }

    /// <summary>A stable, process-independent hash of the node id (FNV-1a), used to break score ties.</summary>
    private static ulong TieKey(NodeId id)
    {
        var h = 14695981039346656037UL;
        foreach (var c in id.Value)
        {
            h = (h ^ c) * 1099511628211UL;
        }

        return h;
    }
}
