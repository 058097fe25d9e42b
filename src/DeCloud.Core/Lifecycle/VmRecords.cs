using DeCloud.Core.Model;

namespace DeCloud.Core.Lifecycle;

/// <summary>What a VM asks for.</summary>
/// <param name="Owner">The wallet that owns the VM.</param>
/// <param name="Resources">Requested resources.</param>
/// <param name="QualityTier">CPU overcommit tier.</param>
/// <param name="BandwidthTier">Network tier.</param>
/// <param name="Architecture">Required CPU architecture.</param>
public sealed record VmSpec(
    WalletAddress Owner,
    Resources Resources,
    QualityTier QualityTier = QualityTier.Standard,
    BandwidthTier BandwidthTier = BandwidthTier.Standard,
    CpuArchitecture Architecture = CpuArchitecture.X86_64)
{
    /// <summary>Checks every field; throws <see cref="DeCloudValidationException"/> naming the first bad one.</summary>
    public void Validate()
    {
        if (Owner.IsEmpty)
        {
            throw Model.Validate.Fail("owner", "must be a wallet address.");
        }

        Resources.ValidateRequest();
        if (!QualityTiers.IsDefined(QualityTier))
        {
            throw Model.Validate.Fail("qualityTier", $"'{QualityTier}' is not a quality tier.");
        }

        if (!BandwidthTierCatalog.IsDefined(BandwidthTier))
        {
            throw Model.Validate.Fail("bandwidthTier", $"'{BandwidthTier}' is not a bandwidth tier.");
        }

        if (Architecture is not (CpuArchitecture.X86_64 or CpuArchitecture.Aarch64))
        {
            throw Model.Validate.Fail("architecture", $"'{Architecture}' is not a supported architecture.");
        }
    }
}

/// <summary>A VM as stored: its spec, state, node and version (incremented by every transition).</summary>
/// <param name="Id">The VM.</param>
/// <param name="Spec">What it asks for.</param>
/// <param name="State">Its current state.</param>
/// <param name="Node">The node it is placed on, or null.</param>
/// <param name="Version">1 after creation, +1 per stored transition; equals the last transition's sequence.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="UpdatedAt">When its last transition was stored.</param>
public sealed record VmRecord(VmId Id, VmSpec Spec, VmState State, NodeId? Node, long Version, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>One stored state change of a VM (creation has <see cref="From"/> = null and sequence 1).</summary>
/// <param name="VmId">The VM.</param>
/// <param name="Sequence">1, 2, 3, ... per VM; equals the VM's version after the change.</param>
/// <param name="From">The state before, or null for creation.</param>
/// <param name="To">The state after.</param>
/// <param name="Cause">What caused it.</param>
/// <param name="Reason">Free text, or null.</param>
/// <param name="Node">The VM's node after the change.</param>
/// <param name="PreviousNode">The VM's node before the change.</param>
/// <param name="At">When it was stored.</param>
public sealed record VmTransition(
    VmId VmId, long Sequence, VmState? From, VmState To, VmTransitionCause Cause, string? Reason, NodeId? Node, NodeId? PreviousNode, DateTimeOffset At);

/// <summary>The outcome of <see cref="VmLifecycle.TransitionAsync"/>.</summary>
/// <param name="Vm">The VM after the call.</param>
/// <param name="Changed">False when the VM already was in the requested state (nothing stored).</param>
/// <param name="EffectIds">Ids (idempotency keys) of the effects queued by this transition.</param>
public sealed record VmTransitionResult(VmRecord Vm, bool Changed, IReadOnlyList<string> EffectIds);

/// <summary>Where an effect is in the outbox.</summary>
public enum VmEffectStatus
{
    /// <summary>Waiting to run (or to be retried).</summary>
    Pending = 0,

    /// <summary>Ran successfully; never runs again.</summary>
    Done = 1,

    /// <summary>Gave up after the maximum number of attempts; needs an operator (see <see cref="IVmStore.RequeueEffectAsync"/>).</summary>
    Failed = 2,
}

/// <summary>One effect in the outbox, with the transition that queued it.</summary>
/// <param name="Id">Stable id and idempotency key: <c>{vmId}/{sequence}/{effect}</c>.</param>
/// <param name="Effect">The effect's registered name.</param>
/// <param name="Transition">The transition that queued it.</param>
/// <param name="Status">Pending, done or failed.</param>
/// <param name="Attempts">How many times it ran and failed (or ran, when done).</param>
/// <param name="NextAttemptAt">When it is due (pending only).</param>
/// <param name="LastError">The last failure's message, or null.</param>
public sealed record VmEffectEntry(
    string Id, string Effect, VmTransition Transition, VmEffectStatus Status, int Attempts, DateTimeOffset NextAttemptAt, string? LastError)
{
    /// <summary>The effect id for a transition: <c>{vmId}/{sequence}/{effect}</c>.</summary>
    public static string MakeId(VmId vmId, long sequence, string effect) => $"{vmId}/{sequence}/{effect}";
}

/// <summary>What an effect handler gets: the transition and a stable idempotency key.</summary>
/// <param name="IdempotencyKey">
/// The same for every attempt of this effect of this transition and different for every other one.
/// An effect that talks to something outside the outbox's database passes it along (or records it)
/// so that a retry after a crash does not apply twice.
/// </param>
/// <param name="Effect">The effect's registered name.</param>
/// <param name="Transition">The stored transition.</param>
/// <param name="Attempt">1 for the first run, 2 for the first retry, ...</param>
public sealed record VmEffectContext(string IdempotencyKey, string Effect, VmTransition Transition, int Attempt);
