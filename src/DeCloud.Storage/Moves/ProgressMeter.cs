namespace DeCloud.Storage.Moves;

/// <summary>Turns byte counts into <see cref="MoveProgress"/> reports (rate and ETA) on a <see cref="TimeProvider"/>, throttled.</summary>
internal sealed class ProgressMeter(TimeProvider time, IProgress<MoveProgress>? progress, TimeSpan interval)
{
    private MoveStep _step;
    private long _total;
    private long _stream;
    private long? _estimate;
    private long _streamStart = time.GetTimestamp();
    private long _lastReport;

    public long TotalBytes => _total;

    public void SetStep(MoveStep step)
    {
        _step = step;
        Report();
    }

    public void BeginStream(long? estimate)
    {
        _stream = 0;
        _estimate = estimate;
        _streamStart = time.GetTimestamp();
        Report();
    }

    public void Add(long bytes)
    {
        _total += bytes;
        _stream += bytes;
        if (time.GetElapsedTime(_lastReport) >= interval)
        {
            Report();
        }
    }

    public MoveProgress Current
    {
        get
        {
            var elapsed = time.GetElapsedTime(_streamStart).TotalSeconds;
            var rate = elapsed > 0 ? _stream / elapsed : 0;
            TimeSpan? eta = _estimate is { } e && rate > 0 ? TimeSpan.FromSeconds(Math.Max(0, e - _stream) / rate) : null;
            return new MoveProgress(_step, _total, _estimate, _stream, rate, eta);
        }
    }

    public void Report()
    {
        _lastReport = time.GetTimestamp();
        progress?.Report(Current);
    }
}
