using DeCloud.Core.Model;

namespace DeCloud.Core.Lifecycle;

/// <summary>A side effect of a VM transition, registered by the host (allocate ports, release resources, ...).</summary>
public interface IVmEffect
{
    /// <summary>The effect's stable name (stored in the outbox): 1-64 of <c>a-z 0-9 - _ .</c>.</summary>
    string Name { get; }

    /// <summary>
    /// Performs the effect. Throwing means "failed, retry later". May run more than once for the same
    /// <see cref="VmEffectContext.IdempotencyKey"/> if the process dies after the effect but before it was
    /// marked done, so it must be idempotent by that key.
    /// </summary>
    ValueTask ExecuteAsync(VmEffectContext context, CancellationToken cancellationToken);
}

/// <summary>
/// Which effects each VM transition triggers, and the handlers that perform them. The host fills it
/// at start; <see cref="VmLifecycle"/> queues the effects in the same transaction as the transition
/// and <see cref="VmEffectRunner"/> runs them.
/// </summary>
public sealed class VmEffectRegistry
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, IVmEffect> _handlers = new(StringComparer.Ordinal);
    private readonly List<(VmState? From, VmState? To, bool Creation, bool CreationOnly, string Effect)> _rules = [];
    private TaskCompletionSource _work = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Registers a handler.</summary>
    public VmEffectRegistry Register(IVmEffect effect)
    {
        ArgumentNullException.ThrowIfNull(effect);
        var name = CheckName(effect.Name);
        lock (_gate)
        {
            if (!_handlers.TryAdd(name, effect))
            {
                throw Validate.Fail("effect", $"an effect named '{name}' is already registered.");
            }
        }

        return this;
    }

    /// <summary>Registers a handler from a delegate.</summary>
    public VmEffectRegistry Register(string name, Func<VmEffectContext, CancellationToken, ValueTask> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return Register(new DelegateEffect(CheckName(name), handler));
    }

    /// <summary>Triggers <paramref name="effect"/> on the transition <paramref name="from"/> -> <paramref name="to"/> (must be allowed by <see cref="VmTransitionTable"/>).</summary>
    public VmEffectRegistry On(VmState from, VmState to, string effect)
    {
        if (!VmTransitionTable.IsAllowed(from, to))
        {
            throw Validate.Fail("transition", $"{from} -> {to} is not an allowed transition, so no effect can run on it.");
        }

        return AddRule(from, to, creation: false, effect);
    }

    /// <summary>Triggers <paramref name="effect"/> on every transition into <paramref name="to"/> (for <see cref="VmState.Pending"/> including creation).</summary>
    public VmEffectRegistry OnEnter(VmState to, string effect)
    {
        CheckState(to, "to");
        return AddRule(null, to, creation: to == VmState.Pending, effect);
    }

    /// <summary>Triggers <paramref name="effect"/> on every transition out of <paramref name="from"/>.</summary>
    public VmEffectRegistry OnExit(VmState from, string effect)
    {
        CheckState(from, "from");
        return AddRule(from, null, creation: false, effect);
    }

    /// <summary>Triggers <paramref name="effect"/> when a VM is created.</summary>
    public VmEffectRegistry OnCreate(string effect) => AddRule(null, VmState.Pending, creation: true, effect, creationOnly: true);

    /// <summary>True when a handler named <paramref name="name"/> is registered.</summary>
    public bool IsRegistered(string name)
    {
        lock (_gate)
        {
            return _handlers.ContainsKey(name);
        }
    }

    /// <summary>The effects a transition triggers (<paramref name="from"/> null = creation), each once, in registration order.</summary>
    public IReadOnlyList<string> EffectsFor(VmState? from, VmState to)
    {
        lock (_gate)
        {
            var list = new List<string>();
            foreach (var rule in _rules)
            {
                bool match = from is null
                    ? rule.Creation
                    : !rule.CreationOnly && (rule.From is null || rule.From == from) && (rule.To is null || rule.To == to);
                if (match && !list.Contains(rule.Effect, StringComparer.Ordinal))
                {
                    list.Add(rule.Effect);
                }
            }

            return list;
        }
    }

    internal IVmEffect? Find(string name)
    {
        lock (_gate)
        {
            return _handlers.GetValueOrDefault(name);
        }
    }

    /// <summary>The task that completes when new effects were queued after it was taken.</summary>
    internal Task WorkQueued => Volatile.Read(ref _work).Task;

    /// <summary>Wakes runners waiting on <see cref="WorkQueued"/>.</summary>
    internal void SignalWork() =>
        Interlocked.Exchange(ref _work, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    private VmEffectRegistry AddRule(VmState? from, VmState? to, bool creation, string effect, bool creationOnly = false)
    {
        var name = CheckName(effect);
        lock (_gate)
        {
            _rules.Add((from, to, creation, creationOnly, name));
        }

        return this;
    }

    private static void CheckState(VmState state, string field)
    {
        if (!VmTransitionTable.IsDefined(state))
        {
            throw Validate.Fail(field, $"'{state}' is not a VM state.");
        }
    }

    internal static string CheckName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 64 ||
            !name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_' or '.'))
        {
            throw Validate.Fail("effect", $"'{name}' is not an effect name; use 1-64 of a-z, 0-9, '-', '_', '.'.");
        }

        return name;
    }

    private sealed class DelegateEffect(string name, Func<VmEffectContext, CancellationToken, ValueTask> handler) : IVmEffect
    {
        public string Name => name;

        public ValueTask ExecuteAsync(VmEffectContext context, CancellationToken cancellationToken) => handler(context, cancellationToken);
    }
}
