using DeCloud.Core.Model;

namespace DeCloud.Core.Lifecycle;

/// <summary>How <see cref="VmEffectRunner"/> runs and retries effects.</summary>
public sealed class VmEffectRunnerOptions
{
    /// <summary>Delay before the first retry; doubles per failed attempt. Default 1 s.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound of the retry delay. Default 5 minutes.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Attempts before an effect is marked <see cref="VmEffectStatus.Failed"/>. Default 20.</summary>
    public int MaxAttempts { get; set; } = 20;

    /// <summary>Longest sleep of the loop when nothing is queued (it also wakes on new work). Default 30 s.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Time allowed to one attempt of one effect. Default 2 minutes.</summary>
    public TimeSpan EffectTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Effects fetched per round. Default 100.</summary>
    public int BatchSize { get; set; } = 100;

    /// <summary>Effects run at the same time. Default 4.</summary>
    public int MaxConcurrency { get; set; } = 4;

    /// <summary>Throws <see cref="DeCloudValidationException"/> naming the first bad property.</summary>
    public void Validate()
    {
        Positive(InitialBackoff, nameof(InitialBackoff));
        Positive(MaxBackoff, nameof(MaxBackoff));
        Positive(PollInterval, nameof(PollInterval));
        Positive(EffectTimeout, nameof(EffectTimeout));
        if (MaxBackoff < InitialBackoff)
        {
            throw Model.Validate.Fail(nameof(VmEffectRunnerOptions) + "." + nameof(MaxBackoff), $"{MaxBackoff} is shorter than InitialBackoff ({InitialBackoff}).");
        }

        Model.Validate.Range(MaxAttempts, 1, 1_000_000, nameof(VmEffectRunnerOptions) + "." + nameof(MaxAttempts));
        Model.Validate.Range(BatchSize, 1, 10_000, nameof(VmEffectRunnerOptions) + "." + nameof(BatchSize));
        Model.Validate.Range(MaxConcurrency, 1, 256, nameof(VmEffectRunnerOptions) + "." + nameof(MaxConcurrency));
    }

    /// <summary>The delay after the <paramref name="failedAttempts"/>-th failure: InitialBackoff * 2^(n-1), capped.</summary>
    public TimeSpan BackoffAfter(int failedAttempts)
    {
        var exponent = Math.Clamp(failedAttempts - 1, 0, 30);
        var ticks = Math.Min((double)InitialBackoff.Ticks * Math.Pow(2, exponent), MaxBackoff.Ticks);
        return TimeSpan.FromTicks((long)ticks);
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero || value > TimeSpan.FromDays(1))
        {
            throw Model.Validate.Fail(nameof(VmEffectRunnerOptions) + "." + name, $"{value} must be positive and at most one day.");
        }
    }
}
