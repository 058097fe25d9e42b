namespace DeCloud.Relay.Forwarding;

/// <summary>
/// A token bucket that limits bytes per second. Callers take what they send and, when that overdraws
/// the bucket, wait until the debt is repaid, so the long-run rate equals the limit and a burst of
/// at most <see cref="Burst"/> bytes passes without waiting.
/// </summary>
internal sealed class TokenBucket
{
    private readonly TimeProvider _timeProvider;
    private readonly Lock _lock = new();
    private double _tokens;
    private long _lastRefill;

    public TokenBucket(long bytesPerSecond, long burst, TimeProvider timeProvider)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytesPerSecond);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(burst);
        BytesPerSecond = bytesPerSecond;
        Burst = burst;
        _timeProvider = timeProvider;
        _tokens = burst;
        _lastRefill = timeProvider.GetTimestamp();
    }

    public long BytesPerSecond { get; }

    public long Burst { get; }

    /// <summary>Takes <paramref name="bytes"/>; returns how long the caller must wait before sending more.</summary>
    public TimeSpan Take(int bytes)
    {
        lock (_lock)
        {
            var now = _timeProvider.GetTimestamp();
            var elapsed = _timeProvider.GetElapsedTime(_lastRefill, now).TotalSeconds;
            _lastRefill = now;
            _tokens = Math.Min(Burst, _tokens + (elapsed * BytesPerSecond));
            _tokens -= bytes;
            return _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / BytesPerSecond);
        }
    }

    /// <summary>Takes <paramref name="bytes"/> and waits out any debt.</summary>
    public async ValueTask WaitAsync(int bytes, CancellationToken cancellationToken)
    {
        var wait = Take(bytes);
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, _timeProvider, cancellationToken).ConfigureAwait(false);
        }
    }
}
