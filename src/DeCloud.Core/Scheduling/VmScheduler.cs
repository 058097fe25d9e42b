using System.Diagnostics.Metrics;
using DeCloud.Core.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Core.Scheduling;

/// <summary>
/// Places VMs on the nodes of a <see cref="NodeInventory"/>: exact hard filters, bin-pack or spread ordering
/// from a precomputed free-CPU index, price and reputation weights, third-party filters and scorers, two-phase
/// holds, gangs, rescheduling proposals and dry runs. A refusal always explains itself. Thread-safe.
/// </summary>
public sealed partial class VmScheduler
{
    private readonly NodeInventory _inv;
    private readonly SchedulerOptions _options;
    private readonly IPlacementFilter[] _filters;
    private readonly IPlacementScorer[] _scorers;
    private readonly ILogger _logger;
    private readonly SchedulerMetrics _metrics;
    private readonly PlacementQuery _q = new();
    private int[] _candidates;
    private long[] _costs;

    /// <summary>Creates a scheduler over <paramref name="inventory"/>.</summary>
    /// <param name="inventory">The nodes; several schedulers may share one.</param>
    /// <param name="options">Options (validated here); defaults when null.</param>
    /// <param name="filters">Third-party hard filters; run cheapest first after the built-in ones.</param>
    /// <param name="scorers">Third-party scorers, added to the built-in score.</param>
    /// <param name="loggerFactory">Logging; none when null.</param>
    /// <param name="meterFactory">Metrics (<c>decloud.scheduler.*</c>); a shared meter when null.</param>
    /// <exception cref="DeCloudValidationException">An option is invalid, or more than 48 filters are given.</exception>
    public VmScheduler(
        NodeInventory inventory,
        SchedulerOptions? options = null,
        IEnumerable<IPlacementFilter>? filters = null,
        IEnumerable<IPlacementScorer>? scorers = null,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(inventory);
        _options = (options ?? new SchedulerOptions()).Clone();
        _options.Validate();
        _inv = inventory;
        var f = new List<IPlacementFilter>(filters ?? []);
        if (f.Count > MaxCustomFilters)
        {
            throw Validate.Fail("filters", $"{f.Count} filters given; at most {MaxCustomFilters} are supported.");
        }

        foreach (var filter in f)
        {
            ArgumentNullException.ThrowIfNull(filter);
        }

        // A stable sort by cost hint: cheap filters first, registration order among equals.
        _filters = [.. f.Select((x, i) => (x, i)).OrderBy(t => t.x.Cost).ThenBy(t => t.i).Select(t => t.x)];
        _scorers = [.. scorers ?? []];
        foreach (var s in _scorers)
        {
            if (s is null || !(s.Weight >= 0 && s.Weight <= 1000))
            {
                throw Validate.Fail("scorers", $"scorer '{s?.Name}' must have a weight between 0 and 1000.");
            }
        }

        _logger = (ILogger?)loggerFactory?.CreateLogger<VmScheduler>() ?? NullLogger.Instance;
        _metrics = new SchedulerMetrics(meterFactory);
        _candidates = new int[_options.CandidatesToScore];
        _costs = new long[_options.CandidatesToScore];
        _inv.HoldsExpired += OnHoldsExpired;
    }

    /// <summary>The nodes this scheduler places on.</summary>
    public NodeInventory Inventory => _inv;

    /// <summary>
    /// Places one VM: decides (dry run), holds, or commits at once. Expected outcomes, including "nothing fits",
    /// are results, not exceptions; a successful placement allocates nothing.
    /// </summary>
    /// <param name="request">The VM.</param>
    /// <param name="mode">Dry run, hold or commit.</param>
    /// <param name="holdFor">How long a hold lasts; <see cref="SchedulerOptions.HoldDuration"/> when null.</param>
    /// <exception cref="DeCloudValidationException">The request is invalid or names an unknown target node; nothing changed.</exception>
    public PlacementResult Place(PlacementRequest request, PlacementMode mode = PlacementMode.Commit, TimeSpan? holdFor = null)
    {
        var cap = RequestValidator.Validate(request, _options, string.Empty);
        var hold = HoldTicks(mode, holdFor);
        lock (_inv.Gate)
        {
            _inv.ExpireDue();
            Compile(request, cap, ignoreTarget: false, excludeEpoch: 0);
            var slot = Choose(out var score);
            if (slot < 0)
            {
                var refusal = Explain(_q, -1);
                _metrics.Refused();
                Log.Refused(_logger, request.VmId, refusal.Summary);
                return new PlacementResult(refusal, mode);
            }

            return Reserve(slot, score, mode, hold);
        }
    }

    /// <summary>Explains how the fleet judges <paramref name="request"/> without placing it: rejection counts, near misses, nodes that fit.</summary>
    /// <exception cref="DeCloudValidationException">The request is invalid.</exception>
    public PlacementRefusal Explain(PlacementRequest request)
    {
        var cap = RequestValidator.Validate(request, _options, string.Empty);
        lock (_inv.Gate)
        {
            _inv.ExpireDue();
            Compile(request, cap, ignoreTarget: false, excludeEpoch: 0);
            return Explain(_q, -1);
        }
    }

    /// <summary>Commits a hold. Committing twice is harmless.</summary>
    /// <returns><see cref="ReservationState.Allocated"/>, or <see cref="ReservationState.None"/> when the hold expired, was released or is unknown.</returns>
    public ReservationState Commit(ReservationId reservation)
    {
        lock (_inv.Gate)
        {
            _inv.ExpireDue();
            return _inv.CommitUnderLock(reservation);
        }
    }

    /// <summary>Releases a hold or allocation, returning its resources. Idempotent.</summary>
    /// <returns>True when something was released; false when it already was (or expired, or is unknown).</returns>
    public bool Release(ReservationId reservation)
    {
        lock (_inv.Gate)
        {
            _inv.ExpireDue();
            return _inv.ReleaseUnderLock(reservation);
        }
    }

    /// <summary>The reservation's current state, or null when it is released, expired or unknown.</summary>
    public ReservationInfo? GetReservation(ReservationId reservation)
    {
        lock (_inv.Gate)
        {
            _inv.ExpireDue();
            return _inv.InfoUnderLock(reservation);
        }
    }

    /// <summary>
    /// Places several VMs all-or-nothing, largest first. With <paramref name="distinctNodes"/> no two members share
    /// a node. On refusal nothing stays held and the refusal names the member that did not fit.
    /// </summary>
    /// <exception cref="DeCloudValidationException">A member is invalid, the gang is empty, larger than <see cref="SchedulerOptions.MaxGangSize"/>, or (distinct) larger than the fleet.</exception>
    public GangPlacementResult PlaceGang(IReadOnlyList<PlacementRequest> members, bool distinctNodes = false, PlacementMode mode = PlacementMode.Commit, TimeSpan? holdFor = null)
    {
        ArgumentNullException.ThrowIfNull(members);
        if (members.Count == 0 || members.Count > _options.MaxGangSize)
        {
            throw Validate.Fail("members", $"{members.Count} members given; a gang has 1-{_options.MaxGangSize}.");
        }

        var caps = new long[members.Count];
        for (var i = 0; i < members.Count; i++)
        {
            caps[i] = RequestValidator.Validate(members[i], _options, $"members[{i}].");
        }

        var hold = HoldTicks(mode, holdFor);
        var order = new int[members.Count];
        var sizes = new long[members.Count];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
            sizes[i] = -ResourceAmounts.Of(members[i].Resources, members[i].QualityTier).CpuTwelfths;
        }

        Array.Sort(sizes, order); // largest first; Array.Sort is unstable, so ties are put back in request order below.
        SortTiesByIndex(sizes, order);

        lock (_inv.Gate)
        {
            _inv.ExpireDue();
            if (distinctNodes && members.Count > _inv.Count)
            {
                throw Validate.Fail("members", $"{members.Count} members on distinct nodes, but the fleet has only {_inv.Count} nodes.");
            }

            foreach (var m in members)
            {
                if (m.TargetNode is { } t)
                {
                    _inv.SlotOf(t);
                }
            }

            var epoch = distinctNodes ? _inv.NextEpoch() : 0;
            var results = new PlacementResult[members.Count];
            var tentative = new List<ReservationId>(members.Count);
            foreach (var i in order)
            {
                Compile(members[i], caps[i], ignoreTarget: false, excludeEpoch: epoch);
                var slot = Choose(out var score);
                if (slot < 0)
                {
                    var refusal = Explain(_q, i);
                    foreach (var id in tentative)
                    {
                        _inv.ReleaseUnderLock(id);
                    }

                    _metrics.Refused();
                    Log.GangRefused(_logger, members.Count, i, refusal.Summary);
                    return new GangPlacementResult([], refusal);
                }

                if (distinctNodes)
                {
                    _inv.Mark[slot] = epoch;
                }

                // A dry run still reserves tentatively, so later members see earlier ones; released below.
                var r = Reserve(slot, score, mode == PlacementMode.DryRun ? PlacementMode.Hold : mode, hold);
                tentative.Add(r.Reservation);
                results[i] = mode == PlacementMode.DryRun ? new PlacementResult(r.Node, default, PlacementMode.DryRun, score) : r;
            }

            if (mode == PlacementMode.DryRun)
            {
                foreach (var id in tentative)
                {
                    _inv.ReleaseUnderLock(id);
                }
            }

            return new GangPlacementResult(results, null);
        }
    }

    /// <summary>
    /// Proposes new nodes for every VM held or allocated on <paramref name="node"/> (typically one that went
    /// offline), largest first, never on that node. Current reservations are left in place.
    /// </summary>
    /// <param name="node">The node whose VMs need a new home.</param>
    /// <param name="mode">Hold (default) to reserve the proposals, DryRun to only decide, Commit to allocate.</param>
    /// <param name="holdFor">How long proposal holds last.</param>
    /// <exception cref="DeCloudValidationException">Unknown node.</exception>
    public IReadOnlyList<ReschedulingProposal> ProposeRescheduling(NodeId node, PlacementMode mode = PlacementMode.Hold, TimeSpan? holdFor = null)
    {
        var hold = HoldTicks(mode, holdFor);
        lock (_inv.Gate)
        {
            _inv.ExpireDue();
            var source = _inv.SlotOf(node);
            var vms = new List<(int Reservation, long Cpu)>();
            for (var r = _inv.FirstReservation(source); r >= 0; r = _inv.NextReservation(r))
            {
                if (_inv.RequestOf(r) is { } req)
                {
                    vms.Add((r, ResourceAmounts.Of(req.Resources, req.QualityTier).CpuTwelfths));
                }
            }

            vms.Sort((a, b) => b.Cpu != a.Cpu ? b.Cpu.CompareTo(a.Cpu) : a.Reservation.CompareTo(b.Reservation));
            var epoch = _inv.NextEpoch();
            _inv.Mark[source] = epoch;
            var proposals = new List<ReschedulingProposal>(vms.Count);
            var tentative = new List<ReservationId>();
            foreach (var (r, _) in vms)
            {
                var req = _inv.RequestOf(r)!;
                var cap = RequestValidator.Validate(req, _options, string.Empty);
                Compile(req, cap, ignoreTarget: true, excludeEpoch: epoch);
                var slot = Choose(out var score);
                PlacementResult result;
                if (slot < 0)
                {
                    result = new PlacementResult(Explain(_q, -1), mode);
                }
                else
                {
                    result = Reserve(slot, score, mode == PlacementMode.DryRun ? PlacementMode.Hold : mode, hold);
                    if (mode == PlacementMode.DryRun)
                    {
                        tentative.Add(result.Reservation);
                        result = new PlacementResult(result.Node, default, PlacementMode.DryRun, score);
                    }
                }

                proposals.Add(new ReschedulingProposal(_inv.VmOf(r), _inv.IdOf(r), result));
            }

            foreach (var id in tentative)
            {
                _inv.ReleaseUnderLock(id);
            }

            Log.Rescheduled(_logger, node, proposals.Count);
            return proposals;
        }
    }

    private const int MaxCustomFilters = 48;

    private long HoldTicks(PlacementMode mode, TimeSpan? holdFor)
    {
        if (mode is not (PlacementMode.DryRun or PlacementMode.Hold or PlacementMode.Commit))
        {
            throw Validate.Fail("mode", $"'{mode}' is not a placement mode; expected DryRun, Hold or Commit.");
        }

        var d = holdFor ?? _options.HoldDuration;
        if (d <= TimeSpan.Zero || d > TimeSpan.FromDays(1))
        {
            throw Validate.Fail("holdFor", $"{d} must be positive and at most one day.");
        }

        return d.Ticks;
    }

    private static void SortTiesByIndex(long[] keys, int[] order)
    {
        var start = 0;
        for (var i = 1; i <= keys.Length; i++)
        {
            if (i == keys.Length || keys[i] != keys[start])
            {
                Array.Sort(order, start, i - start);
                start = i;
            }
        }
    }

    private PlacementResult Reserve(int slot, double score, PlacementMode mode, long holdTicks)
    {
        var node = _inv.Ids[slot];
        if (mode == PlacementMode.DryRun)
        {
            _metrics.Placed(mode);
            return new PlacementResult(node, default, mode, score);
        }

        var hold = mode == PlacementMode.Hold;
        var expires = hold ? _inv.Time.GetUtcNow().UtcTicks + holdTicks : long.MaxValue;
        var id = _inv.Reserve(slot, _q.Amounts, hold, expires, _q.Request.VmId, _q.Request);
        _metrics.Placed(mode);
        return new PlacementResult(node, id, mode, score);
    }

    private void OnHoldsExpired(int count)
    {
        _metrics.Expired(count);
        Log.HoldsExpired(_logger, count);
    }
}
