using DeCloud.Core.Model;

namespace DeCloud.Core.Scheduling;

/// <summary>Reservations: holds and allocations in pooled slots, with an indexed min-heap of hold expiries.</summary>
public sealed partial class NodeInventory
{
    private int[] _resNode = [];
    private long[] _resCpu = [], _resMem = [], _resSto = [];
    private int[] _resGpu = [];
    private ReservationState[] _resState = [];
    private int[] _resGen = [];
    private long[] _resExpiry = [];
    private VmId[] _resVm = [];
    private PlacementRequest?[] _resRequest = [];
    private int[] _resNext = [], _resPrev = [];
    private int[] _heapPos = [];
    private int[] _heap = [];
    private int _heapCount;
    private int _resCount;
    private int _resFree = -1;

    /// <summary>Called back (under the lock) when holds expire, with how many did.</summary>
    internal Action<int>? HoldsExpired { get; set; }

    /// <summary>Reserves <paramref name="amounts"/> on a node: a hold until <paramref name="expiresAtTicks"/> or an allocation.</summary>
    internal ReservationId Reserve(int slot, ResourceAmounts amounts, bool hold, long expiresAtTicks, VmId vm, PlacementRequest? request)
    {
        int r;
        if (_resFree >= 0)
        {
            r = _resFree;
            _resFree = _resNext[r];
        }
        else
        {
            r = _resCount++;
            if (r >= _resNode.Length)
            {
                GrowReservations(_resNode.Length * 2);
            }
        }

        _resNode[r] = slot;
        _resCpu[r] = amounts.CpuTwelfths;
        _resMem[r] = amounts.MemoryMiB;
        _resSto[r] = amounts.StorageGiB;
        _resGpu[r] = amounts.Gpus;
        _resVm[r] = vm;
        _resRequest[r] = request;
        _resState[r] = hold ? ReservationState.Held : ReservationState.Allocated;
        _resExpiry[r] = hold ? expiresAtTicks : long.MaxValue;

        var head = ResHead[slot];
        _resNext[r] = head;
        _resPrev[r] = -1;
        if (head >= 0)
        {
            _resPrev[head] = r;
        }

        ResHead[slot] = r;

        FreeCpu[slot] -= amounts.CpuTwelfths;
        FreeMem[slot] -= amounts.MemoryMiB;
        FreeSto[slot] -= amounts.StorageGiB;
        FreeGpu[slot] -= amounts.Gpus;
        if (hold)
        {
            HeldCpu[slot] += amounts.CpuTwelfths;
            HeldMem[slot] += amounts.MemoryMiB;
            HeldSto[slot] += amounts.StorageGiB;
            HeldGpu[slot] += amounts.Gpus;
            HeapPush(r);
        }

        Reposition(slot);
        return ReservationId.From(r, _resGen[r]);
    }

    /// <summary>Turns a hold into an allocation.</summary>
    internal ReservationState CommitUnderLock(ReservationId id)
    {
        if (!TryResolve(id, out var r))
        {
            return ReservationState.None;
        }

        if (_resState[r] == ReservationState.Held)
        {
            var slot = _resNode[r];
            HeldCpu[slot] -= _resCpu[r];
            HeldMem[slot] -= _resMem[r];
            HeldSto[slot] -= _resSto[r];
            HeldGpu[slot] -= _resGpu[r];
            HeapRemove(r);
            _resState[r] = ReservationState.Allocated;
            _resExpiry[r] = long.MaxValue;
        }

        return ReservationState.Allocated;
    }

    /// <summary>Releases a hold or allocation; false when it was already released, expired or unknown.</summary>
    internal bool ReleaseUnderLock(ReservationId id)
    {
        if (!TryResolve(id, out var r))
        {
            return false;
        }

        FreeReservation(r);
        return true;
    }

    internal ReservationState StateUnderLock(ReservationId id) => TryResolve(id, out var r) ? _resState[r] : ReservationState.None;

    internal ReservationInfo? InfoUnderLock(ReservationId id) => TryResolve(id, out var r) ? InfoOf(r) : null;

    internal int NodeSlotOf(ReservationId id) => TryResolve(id, out var r) ? _resNode[r] : -1;

    internal PlacementRequest? RequestOf(int r) => _resRequest[r];

    internal VmId VmOf(int r) => _resVm[r];

    internal int FirstReservation(int slot) => ResHead[slot];

    internal int NextReservation(int r) => _resNext[r];

    internal ReservationId IdOf(int r) => ReservationId.From(r, _resGen[r]);

    /// <summary>Releases every hold whose expiry has passed.</summary>
    internal int ExpireDue()
    {
        if (_heapCount == 0)
        {
            return 0;
        }

        var now = _time.GetUtcNow().UtcTicks;
        var n = 0;
        while (_heapCount > 0 && _resExpiry[_heap[0]] <= now)
        {
            FreeReservation(_heap[0]);
            n++;
        }

        if (n > 0)
        {
            HoldsExpired?.Invoke(n);
        }

        return n;
    }

    private ReservationInfo InfoOf(int r)
    {
        var amounts = new ResourceAmounts(_resCpu[r], _resMem[r], _resSto[r], _resGpu[r]);
        DateTimeOffset? expires = _resState[r] == ReservationState.Held ? new DateTimeOffset(_resExpiry[r], TimeSpan.Zero) : null;
        return new ReservationInfo(ReservationId.From(r, _resGen[r]), _resVm[r], Ids[_resNode[r]], _resState[r], amounts, expires);
    }

    private bool TryResolve(ReservationId id, out int r)
    {
        r = id.Slot;
        return !id.IsEmpty && (uint)r < (uint)_resCount && _resGen[r] == id.Generation && _resState[r] != ReservationState.None;
    }

    private void FreeReservation(int r)
    {
        var slot = _resNode[r];
        FreeCpu[slot] += _resCpu[r];
        FreeMem[slot] += _resMem[r];
        FreeSto[slot] += _resSto[r];
        FreeGpu[slot] += _resGpu[r];
        if (_resState[r] == ReservationState.Held)
        {
            HeldCpu[slot] -= _resCpu[r];
            HeldMem[slot] -= _resMem[r];
            HeldSto[slot] -= _resSto[r];
            HeldGpu[slot] -= _resGpu[r];
            HeapRemove(r);
        }

        var next = _resNext[r];
        var prev = _resPrev[r];
        if (prev >= 0)
        {
            _resNext[prev] = next;
        }
        else
        {
            ResHead[slot] = next;
        }

        if (next >= 0)
        {
            _resPrev[next] = prev;
        }

        _resState[r] = ReservationState.None;
        _resRequest[r] = null;
        _resGen[r] = _resGen[r] == int.MaxValue ? 1 : _resGen[r] + 1;
        _resNext[r] = _resFree;
        _resFree = r;
        Reposition(slot);
    }

    private void InitReservations() => GrowReservations(64);

    private void GrowReservations(int n)
    {
        var old = _resGen.Length;
        Array.Resize(ref _resNode, n);
        Array.Resize(ref _resCpu, n);
        Array.Resize(ref _resMem, n);
        Array.Resize(ref _resSto, n);
        Array.Resize(ref _resGpu, n);
        Array.Resize(ref _resState, n);
        Array.Resize(ref _resGen, n);
        Array.Resize(ref _resExpiry, n);
        Array.Resize(ref _resVm, n);
        Array.Resize(ref _resRequest, n);
        Array.Resize(ref _resNext, n);
        Array.Resize(ref _resPrev, n);
        Array.Resize(ref _heapPos, n);
        Array.Resize(ref _heap, n);
        _resGen.AsSpan(old).Fill(1);
    }

    private void HeapPush(int r)
    {
        var i = _heapCount++;
        _heap[i] = r;
        _heapPos[r] = i;
        SiftUp(i);
    }

    private void HeapRemove(int r)
    {
        var i = _heapPos[r];
        var last = --_heapCount;
        if (i != last)
        {
            _heap[i] = _heap[last];
            _heapPos[_heap[i]] = i;
            SiftDown(i);
            SiftUp(i);
        }
    }

    private void SiftUp(int i)
    {
        while (i > 0)
        {
            var parent = (i - 1) >> 1;
            if (_resExpiry[_heap[parent]] <= _resExpiry[_heap[i]])
            {
                break;
            }

            Swap(i, parent);
            i = parent;
        }
    }

    private void SiftDown(int i)
    {
        while (true)
        {
            var l = (2 * i) + 1;
            if (l >= _heapCount)
            {
                return;
            }

            var m = l + 1 < _heapCount && _resExpiry[_heap[l + 1]] < _resExpiry[_heap[l]] ? l + 1 : l;
            if (_resExpiry[_heap[i]] <= _resExpiry[_heap[m]])
            {
                return;
            }

            Swap(i, m);
            i = m;
        }
    }

    private void Swap(int a, int b)
    {
        (_heap[a], _heap[b]) = (_heap[b], _heap[a]);
        _heapPos[_heap[a]] = a;
        _heapPos[_heap[b]] = b;
    }
}
