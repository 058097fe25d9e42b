namespace DeCloud.Core;

/// <summary>
/// The start/stop plumbing of a long-running loop owned by a hosted service: <see cref="Start"/> is idempotent,
/// <see cref="StopAsync"/> cancels the loop's token and waits for it to return, after which it can start again.
/// </summary>
internal sealed class BackgroundLoop : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private CancellationTokenSource? _stop;
    private Task? _loop;

    /// <summary>
    /// Unless the loop is already running: calls <paramref name="begin"/> on the caller's thread (so what it sets up, such
    /// as a timer, exists when <c>Start</c> returns) and runs the loop it returns on the thread pool.
    /// </summary>
    public void Start(Func<CancellationToken, Func<Task>> begin)
    {
        lock (_gate)
        {
            if (_loop is null)
            {
                _stop = new CancellationTokenSource();
                var loop = begin(_stop.Token);
                _loop = Task.Run(loop, CancellationToken.None);
            }
        }
    }

    /// <summary>Cancels the loop and waits (at most as long as <paramref name="cancellationToken"/> allows) for it to end.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Task? loop;
        lock (_gate)
        {
            loop = _loop;
            _stop?.Cancel();
        }

        if (loop is not null)
        {
            await loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        lock (_gate)
        {
            _loop = null;
            _stop?.Dispose();
            _stop = null;
        }
    }

    /// <summary>Stops the loop (see <see cref="StopAsync"/>).</summary>
    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);
}
