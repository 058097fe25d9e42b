using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Core.Registry;

/// <summary>
/// Runs <see cref="NodeRegistry.CheckHealthAsync"/> every <see cref="NodeRegistryOptions.CheckInterval"/>
/// on the <see cref="TimeProvider"/>: nodes silent for longer than <see cref="NodeRegistryOptions.OfflineAfter"/>
/// go offline, failed heartbeats are counted. A hosted service under DI; without DI call
/// <see cref="StartAsync"/> and <see cref="DisposeAsync"/>.
/// </summary>
public sealed class NodeHealthMonitor : IHostedService, IAsyncDisposable
{
    private readonly NodeRegistry _registry;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly BackgroundLoop _loop = new();

    /// <summary>Creates a monitor for <paramref name="registry"/>.</summary>
    public NodeHealthMonitor(NodeRegistry registry, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _registry = registry;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<NodeHealthMonitor>();
    }

    /// <summary>Completed checks (for tests and diagnostics).</summary>
    public long Checks => Interlocked.Read(ref _checks);

    private long _checks;

    /// <summary>Starts the loop (idempotent). The first check runs one interval after the start.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        _loop.Start(stop =>
        {
            var timer = new PeriodicTimer(_registry.Options.CheckInterval, _time);
            return () => LoopAsync(timer, stop);
        });
        return Task.CompletedTask;
    }

    /// <summary>Stops the loop and waits for a running check to finish.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _loop.StopAsync(cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _loop.DisposeAsync();

    private async Task LoopAsync(PeriodicTimer timer, CancellationToken stop)
    {
        using (timer)
        {
            try
            {
                while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
                {
                    try
                    {
                        await _registry.CheckHealthAsync(stop).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        Log.CheckFailed(_logger, ex, _registry.Options.CheckInterval);
                    }

                    Interlocked.Increment(ref _checks);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // Stopped.
            }
        }
    }
}
