using DeCloud.Core.Security;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Orchestrator.Security;

/// <summary>
/// Rotates the token signing key once it is <see cref="OrchestratorOptions.SigningKeyLifetime"/> old (its age
/// survives restarts: the ring is persisted). The previous key keeps verifying for the ring's rotation
/// overlap (1 h, longer than any token), and hosts learn the new key when a token names it.
/// </summary>
internal sealed partial class SigningKeyRotation(TokenKeyRing ring, IOptions<OrchestratorOptions> options, TimeProvider time,
    ILogger<SigningKeyRotation> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var lifetime = options.Value.SigningKeyLifetime;
        var check = TimeSpan.FromTicks(Math.Clamp(lifetime.Ticks / 10, TimeSpan.FromMilliseconds(100).Ticks, TimeSpan.FromHours(1).Ticks));
        using var timer = new PeriodicTimer(check, time);
        try
        {
            do
            {
                RotateIfDue(lifetime);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    /// <summary>Rotates when the signing key is at least <paramref name="lifetime"/> old; true when it did.</summary>
    internal bool RotateIfDue(TimeSpan lifetime)
    {
        var age = time.GetUtcNow() - ring.CurrentKeyCreatedAt;
        if (age < lifetime)
        {
            return false;
        }

        try
        {
            var kid = ring.Rotate();
            Log.Rotated(logger, kid, age);
            return true;
        }
        catch (Exception ex) when (ex is Microsoft.Data.Sqlite.SqliteException or IOException)
        {
            // Nothing changed (the ring saves before it switches); try again at the next check.
            Log.RotationFailed(logger, ex.Message);
            return false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(901, LogLevel.Information, "Token signing key rotated to {KeyId} (the previous one was {Age} old and keeps verifying during the overlap).")]
        public static partial void Rotated(ILogger logger, string keyId, TimeSpan age);

        [LoggerMessage(902, LogLevel.Warning, "Token signing key rotation failed, nothing changed: {Reason}")]
        public static partial void RotationFailed(ILogger logger, string reason);
    }
}
