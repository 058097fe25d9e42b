using System.Diagnostics.Metrics;
using DeCloud.Core.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Core.Lifecycle;

/// <summary>
/// The VM state machine: the only way a VM's state changes. Every change is checked against
/// <see cref="VmTransitionTable"/>, then the new state, the transition and the effects it triggers
/// (from <see cref="VmEffectRegistry"/>) are stored in one transaction before anything else happens
/// (persist first, outbox). <see cref="VmEffectRunner"/> performs the effects afterwards.
/// </summary>
public sealed class VmLifecycle
{
    private const int MaxConflictRetries = 16;
    private static readonly Meter Meter = new("DeCloud.Core");
    private static readonly Counter<long> Transitions = Meter.CreateCounter<long>("decloud.lifecycle.transitions", "{transition}", "VM transitions stored.");
    private static readonly Counter<long> Refused = Meter.CreateCounter<long>("decloud.lifecycle.refused", "{transition}", "VM transitions refused as invalid.");

    private readonly IVmStore _store;
    private readonly VmEffectRegistry _effects;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>Creates the state machine over <paramref name="store"/>.</summary>
    public VmLifecycle(IVmStore store, VmEffectRegistry effects, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(effects);
        _store = store;
        _effects = effects;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<VmLifecycle>();
    }

    /// <summary>The store this state machine writes to.</summary>
    public IVmStore Store => _store;

    /// <summary>
    /// Creates a VM in <see cref="VmState.Pending"/> and queues the creation effects, in one transaction.
    /// Throws <see cref="DeCloudValidationException"/> for a bad spec or an id that already exists.
    /// </summary>
    public async Task<VmTransitionResult> CreateAsync(VmId id, VmSpec spec, string? reason = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (id.Value == Guid.Empty)
        {
            throw Validate.Fail("vmId", "must not be empty.");
        }

        spec.Validate();
        CheckReason(reason);
        var now = _time.GetUtcNow();
        var vm = new VmRecord(id, spec, VmState.Pending, null, 1, now, now);
        var creation = new VmTransition(id, 1, null, VmState.Pending, VmTransitionCause.Command, reason, null, null, now);
        var effects = _effects.EffectsFor(null, VmState.Pending);
        if (!await _store.InsertAsync(vm, creation, effects, now, cancellationToken).ConfigureAwait(false))
        {
            throw Validate.Fail("vmId", $"VM {id} already exists.");
        }

        Transitions.Add(1);
        Log.Created(_logger, id, effects.Count);
        if (effects.Count > 0)
        {
            _effects.SignalWork();
        }

        return new VmTransitionResult(vm, true, effects.Select(e => VmEffectEntry.MakeId(id, 1, e)).ToArray());
    }

    /// <summary>
    /// Moves a VM to <paramref name="to"/>. A transition the table does not allow throws
    /// <see cref="VmTransitionException"/> naming both states and stores nothing; asking for the state
    /// the VM is already in stores nothing and returns <c>Changed = false</c>.
    /// </summary>
    /// <param name="id">The VM.</param>
    /// <param name="to">The target state.</param>
    /// <param name="cause">What caused the change.</param>
    /// <param name="reason">Free text for the history (at most 1,000 characters).</param>
    /// <param name="node">The node: required for <see cref="VmState.Scheduled"/>, the destination for <see cref="VmState.Migrating"/>, not allowed otherwise.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<VmTransitionResult> TransitionAsync(
        VmId id, VmState to, VmTransitionCause cause, string? reason = null, NodeId? node = null, CancellationToken cancellationToken = default)
    {
        if (!VmTransitionTable.IsDefined(to))
        {
            throw Validate.Fail("to", $"'{to}' is not a VM state.");
        }

        if (!Enum.IsDefined(cause))
        {
            throw Validate.Fail("cause", $"'{cause}' is not a transition cause.");
        }

        CheckReason(reason);
        if (node is { IsEmpty: true })
        {
            throw Validate.Fail("node", "must not be an empty node id.");
        }

        for (var attempt = 0; attempt < MaxConflictRetries; attempt++)
        {
            var vm = await _store.GetAsync(id, cancellationToken).ConfigureAwait(false)
                ?? throw new DeCloudNotFoundException("vmId", id.ToString(), "VM");
            if (vm.State == to && (node is null || node == vm.Node))
            {
                return new VmTransitionResult(vm, false, []);
            }

            if (!VmTransitionTable.IsAllowed(vm.State, to))
            {
                Refused.Add(1);
                Log.Refused(_logger, id, vm.State, to);
                throw new VmTransitionException(id, vm.State, to);
            }

            var newNode = ResolveNode(vm, to, node);
            var now = _time.GetUtcNow();
            var seq = vm.Version + 1;
            var updated = vm with { State = to, Node = newNode, Version = seq, UpdatedAt = now };
            var transition = new VmTransition(id, seq, vm.State, to, cause, reason, newNode, vm.Node, now);
            var effects = _effects.EffectsFor(vm.State, to);
            if (await _store.ApplyTransitionAsync(updated, vm.Version, transition, effects, now, cancellationToken).ConfigureAwait(false))
            {
                Transitions.Add(1);
                Log.Transitioned(_logger, id, vm.State, to, cause, effects.Count);
                if (effects.Count > 0)
                {
                    _effects.SignalWork();
                }

                return new VmTransitionResult(updated, true, effects.Select(e => VmEffectEntry.MakeId(id, seq, e)).ToArray());
            }

            // Someone else changed the VM between our read and our write: re-read and re-check.
        }

        throw new InvalidOperationException($"VM {id} kept changing concurrently; gave up after {MaxConflictRetries} attempts.");
    }

    /// <summary>The VM, or null.</summary>
    public Task<VmRecord?> GetAsync(VmId id, CancellationToken cancellationToken = default) => _store.GetAsync(id, cancellationToken);

    /// <summary>The VM's transitions in order.</summary>
    public Task<IReadOnlyList<VmTransition>> GetHistoryAsync(VmId id, CancellationToken cancellationToken = default) => _store.GetHistoryAsync(id, cancellationToken);

    private static NodeId? ResolveNode(VmRecord vm, VmState to, NodeId? node)
    {
        switch (to)
        {
            case VmState.Scheduled:
                return node ?? throw Validate.Fail("node", $"VM {vm.Id} needs a node to become Scheduled.");
            case VmState.Migrating:
                return node ?? throw Validate.Fail("node", $"VM {vm.Id} needs a destination node to start Migrating.");
            case VmState.Pending:
                if (node is not null)
                {
                    throw Validate.Fail("node", $"a node cannot be given when VM {vm.Id} goes back to Pending.");
                }

                return null;
            default:
                if (node is not null && node != vm.Node)
                {
                    throw Validate.Fail("node", $"VM {vm.Id} is on {(vm.Node?.Value ?? "no node")}; a node can only be given for Scheduled or Migrating.");
                }

                return vm.Node;
        }
    }

    private static void CheckReason(string? reason)
    {
        if (reason is { Length: > 1000 })
        {
            throw Validate.Fail("reason", $"is {reason.Length} characters; at most 1000 are allowed.");
        }
    }
}
