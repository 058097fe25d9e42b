using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Core.Lifecycle;

/// <summary>
/// Runs the effects that <see cref="VmLifecycle"/> queued in the outbox: each effect on its own
/// (a failure or a hang of one does not hold up the others), retried with exponential backoff on the
/// <see cref="TimeProvider"/>, marked done when it succeeds. Pending effects survive a restart and run
/// then. Use it as a hosted service, or call <see cref="StartAsync"/>/<see cref="DisposeAsync"/> yourself,
/// or drive it by hand with <see cref="RunDueAsync"/>.
/// </summary>
/// <remarks>
/// Delivery is at-least-once at the boundary to the outside world: if the process dies after an effect
/// finished but before it was marked done, it runs again after the restart with the same
/// <see cref="VmEffectContext.IdempotencyKey"/>. Within one process an effect never runs twice
/// concurrently, and once marked done it never runs again. Effects that record their result keyed by
/// the idempotency key (as <c>INSERT OR IGNORE</c>, an API's idempotency header, ...) are therefore
/// applied exactly once. One runner per database: two processes sharing a file would both run an effect.
/// </remarks>
public sealed class VmEffectRunner : IHostedService, IAsyncDisposable
{
    private static readonly Meter Meter = new("DeCloud.Core");
    private static readonly Counter<long> Runs = Meter.CreateCounter<long>("decloud.lifecycle.effects", "{effect}", "Effect attempts, by outcome.");

    private readonly IVmStore _store;
    private readonly VmEffectRegistry _effects;
    private readonly VmEffectRunnerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, byte> _inFlight = new(StringComparer.Ordinal);
    private readonly BackgroundLoop _loop = new();

    /// <summary>Creates a runner; validates <paramref name="options"/>.</summary>
    public VmEffectRunner(IVmStore store, VmEffectRegistry effects, VmEffectRunnerOptions? options = null, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(effects);
        _options = options ?? new VmEffectRunnerOptions();
        _options.Validate();
        _store = store;
        _effects = effects;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<VmEffectRunner>();
    }

    /// <summary>
    /// Runs every effect that is due now (at most <see cref="VmEffectRunnerOptions.BatchSize"/>) and
    /// returns how many attempts were made. Effects already running in this process are skipped.
    /// </summary>
    public async Task<int> RunDueAsync(CancellationToken cancellationToken = default)
    {
        var due = await _store.GetDueEffectsAsync(_time.GetUtcNow(), _options.BatchSize, cancellationToken).ConfigureAwait(false);
        var mine = new List<VmEffectEntry>(due.Count);
        foreach (var entry in due)
        {
            if (_inFlight.TryAdd(entry.Id, 0))
            {
                mine.Add(entry);
            }
        }

        try
        {
            await Parallel.ForEachAsync(
                mine,
                new ParallelOptions { MaxDegreeOfParallelism = _options.MaxConcurrency, CancellationToken = cancellationToken },
                async (entry, ct) => await RunOneAsync(entry, ct).ConfigureAwait(false)).ConfigureAwait(false);
        }
        finally
        {
            foreach (var entry in mine)
            {
                _inFlight.TryRemove(entry.Id, out _);
            }
        }

        return mine.Count;
    }

    /// <summary>Starts the background loop (idempotent).</summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        _loop.Start(stop => () => LoopAsync(stop));
        return Task.CompletedTask;
    }

    /// <summary>Stops the loop; effects interrupted by the stop stay pending and run after the next start.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _loop.StopAsync(cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _loop.DisposeAsync();

    private async Task LoopAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var work = _effects.WorkQueued;
            TimeSpan wait;
            try
            {
                if (await RunDueAsync(stop).ConfigureAwait(false) > 0)
                {
                    continue;
                }

                var next = await _store.GetNextDueAsync(stop).ConfigureAwait(false);
                wait = _options.PollInterval;
                if (next is { } due)
                {
                    var untilDue = due - _time.GetUtcNow();
                    wait = untilDue < TimeSpan.FromMilliseconds(50) ? TimeSpan.FromMilliseconds(50) : untilDue < wait ? untilDue : wait;
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                wait = _options.InitialBackoff;
                Log.RoundFailed(_logger, ex, wait);
            }

            using var sleep = CancellationTokenSource.CreateLinkedTokenSource(stop);
            await Task.WhenAny(work, Task.Delay(wait, _time, sleep.Token)).ConfigureAwait(false);
            await sleep.CancelAsync().ConfigureAwait(false);
        }
    }

    private async Task RunOneAsync(VmEffectEntry entry, CancellationToken stop)
    {
        var attempt = entry.Attempts + 1;
        Exception? failure = null;
        var handler = _effects.Find(entry.Effect);
        if (handler is null)
        {
            failure = new InvalidOperationException($"No handler is registered for effect '{entry.Effect}'.");
        }
        else
        {
            using var timeout = new CancellationTokenSource(_options.EffectTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, stop);
            try
            {
                await handler.ExecuteAsync(new VmEffectContext(entry.Id, entry.Effect, entry.Transition, attempt), linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // Interrupted by shutdown: not an attempt; it stays pending and runs after the next start.
                Runs.Add(1, new KeyValuePair<string, object?>("outcome", "interrupted"));
                return;
            }
            catch (OperationCanceledException ex) when (timeout.IsCancellationRequested)
            {
                failure = new TimeoutException($"Effect '{entry.Effect}' did not finish within {_options.EffectTimeout}.", ex);
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        }

        var now = _time.GetUtcNow();
        if (failure is null)
        {
            Runs.Add(1, new KeyValuePair<string, object?>("outcome", "done"));
            if (await _store.CompleteEffectAsync(entry.Id, attempt, now, CancellationToken.None).ConfigureAwait(false))
            {
                Log.EffectDone(_logger, entry.Id, attempt);
            }
            else
            {
                Log.EffectAlreadyMarked(_logger, entry.Id);
            }

            return;
        }

        var error = failure.GetType().Name + ": " + failure.Message;
        if (error.Length > 2000)
        {
            error = error[..2000];
        }

        if (attempt >= _options.MaxAttempts)
        {
            Runs.Add(1, new KeyValuePair<string, object?>("outcome", "gave_up"));
            Log.EffectGaveUp(_logger, failure, entry.Id, attempt);
            await _store.FailEffectAsync(entry.Id, attempt, null, error, CancellationToken.None).ConfigureAwait(false);
        }
        else
        {
            var retryAt = now + _options.BackoffAfter(attempt);
            Runs.Add(1, new KeyValuePair<string, object?>("outcome", "retry"));
            Log.EffectRetry(_logger, failure, entry.Id, attempt, retryAt);
            await _store.FailEffectAsync(entry.Id, attempt, retryAt, error, CancellationToken.None).ConfigureAwait(false);
        }
    }
}
