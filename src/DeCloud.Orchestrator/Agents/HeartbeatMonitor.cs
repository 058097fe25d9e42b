using DeCloud.Orchestrator.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Orchestrator.Agents;

/// <summary>Marks nodes offline when their heartbeats stop, and ends their (silent) streams.</summary>
internal sealed class HeartbeatMonitor(
    OrchestratorStore store,
    AgentSessions sessions,
    OrchestratorMetrics metrics,
    IOptions<OrchestratorOptions> options,
    TimeProvider time,
    ILogger<HeartbeatMonitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var offlineAfter = options.Value.OfflineAfter;
        using var timer = new PeriodicTimer(offlineAfter / 4, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                Sweep(offlineAfter);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    /// <summary>One pass: every node silent for longer than <paramref name="offlineAfter"/> goes offline.</summary>
    internal void Sweep(TimeSpan offlineAfter)
    {
        foreach (var id in store.MarkStaleOffline(time.GetUtcNow() - offlineAfter))
        {
            metrics.NodesOffline.Add(1);
            Log.NodeOffline(logger, id.Value, offlineAfter);
            sessions.End(id);
        }
    }
}
