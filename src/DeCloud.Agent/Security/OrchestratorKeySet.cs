using System.Net;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DeCloud.Agent.Security;

/// <summary>Where the orchestrator's public key set comes from (a seam for tests).</summary>
internal interface IKeySetSource
{
    /// <summary>The key-set JSON.</summary>
    Task<string> FetchAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Fetches <c>/.well-known/decloud-keys.json</c> from the orchestrator over the agent's own connection
/// (the agents' port, cleartext HTTP/2 with prior knowledge), so a NAT'd agent needs nothing inbound.
/// </summary>
internal sealed class HttpKeySetSource : IKeySetSource, IDisposable
{
    public const string Path = "/.well-known/decloud-keys.json";
    private const int MaxBytes = 256 * 1024;
    private readonly HttpClient _http;

    public HttpKeySetSource(IOptions<AgentOptions> options)
    {
        _http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10) })
        {
            BaseAddress = new Uri(options.Value.OrchestratorUrl),
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(15),
            MaxResponseContentBufferSize = MaxBytes,
        };
    }

    public Task<string> FetchAsync(CancellationToken cancellationToken) => _http.GetStringAsync(Path, cancellationToken);

    public void Dispose() => _http.Dispose();
}

/// <summary>
/// Keeps the agent's <see cref="TokenVerificationKeys"/> in step with the orchestrator's key ring: loads the last
/// set from <c>token-keys.json</c> in the data folder at start (so tokens validate while the orchestrator is
/// down), fetches at start and every <see cref="AgentAuthorizationOptions.KeySetRefreshInterval"/> (retrying
/// sooner after a failure), and on demand when a token names a key it does not know (rate limited).
/// </summary>
internal sealed partial class OrchestratorKeySet(
    TokenVerificationKeys keys,
    IKeySetSource source,
    IOptions<AgentOptions> agentOptions,
    IOptions<AgentAuthorizationOptions> options,
    TimeProvider time,
    ILogger<OrchestratorKeySet> logger) : BackgroundService
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private long _lastOnDemandTicks = long.MinValue;

    public string CachePath => System.IO.Path.Combine(agentOptions.Value.DataDirectory, "token-keys.json");

    /// <summary>When the last fetch succeeded, or null.</summary>
    public DateTimeOffset? LastFetched { get; private set; }

    public override void Dispose()
    {
        _gate.Dispose();
        base.Dispose();
    }

    /// <summary>Fetches now; true when the set in use changed.</summary>
    public async Task<bool> RefreshAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var json = await source.FetchAsync(cancellationToken).ConfigureAwait(false);
            var set = TokenPublicKeySet.FromJson(json);
            var before = keys.Version;
            var changed = keys.Update(set) && set.Version != before;
            LastFetched = time.GetUtcNow();
            if (changed)
            {
                SaveCache(json);
                Log.KeySetUpdated(logger, set.Version, set.Keys.Count);
            }

            return changed;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// For a token signed by a key the agent does not know: fetches again unless a fetch for that reason ran
    /// within <see cref="AgentAuthorizationOptions.UnknownKeyRefetchInterval"/>. True when the set changed.
    /// </summary>
    public async Task<bool> RefreshForUnknownKeyAsync(CancellationToken cancellationToken = default)
    {
        var now = time.GetTimestamp();
        var last = Interlocked.Read(ref _lastOnDemandTicks);
        if (last != long.MinValue && time.GetElapsedTime(last, now) < options.Value.UnknownKeyRefetchInterval
            || Interlocked.CompareExchange(ref _lastOnDemandTicks, now, last) != last)
        {
            return false;
        }

        try
        {
            return await RefreshAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsFetchFailure(ex))
        {
            Log.FetchFailed(logger, ex.Message);
            return false;
        }
    }

    /// <summary>Loads the cached key set before anything can ask for a token check, then starts fetching.</summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        LoadCache();
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var retry = TimeSpan.FromSeconds(1);
        while (!stoppingToken.IsCancellationRequested)
        {
            TimeSpan wait;
            try
            {
                await RefreshAsync(stoppingToken).ConfigureAwait(false);
                retry = TimeSpan.FromSeconds(1);
                wait = options.Value.KeySetRefreshInterval;
            }
            catch (Exception ex) when (IsFetchFailure(ex) && !stoppingToken.IsCancellationRequested)
            {
                Log.FetchFailed(logger, ex.Message);
                wait = retry < options.Value.KeySetRefreshInterval ? retry : options.Value.KeySetRefreshInterval;
                retry = TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }

            try
            {
                await Task.Delay(wait, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private static bool IsFetchFailure(Exception ex) =>
        ex is HttpRequestException or IOException or DeCloudValidationException or TaskCanceledException or InvalidOperationException;

    private void LoadCache()
    {
        try
        {
            if (File.Exists(CachePath) && keys.Update(TokenPublicKeySet.FromJson(File.ReadAllText(CachePath))))
            {
                Log.KeySetLoaded(logger, CachePath, keys.Version, keys.Count);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or DeCloudValidationException)
        {
            Log.CacheUnusable(logger, CachePath, ex.Message);
        }
    }

    private void SaveCache(string json)
    {
        try
        {
            Directory.CreateDirectory(agentOptions.Value.DataDirectory);
            var tmp = CachePath + ".tmp";
            File.WriteAllText(tmp, json);
            File.Move(tmp, CachePath, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.CacheUnusable(logger, CachePath, ex.Message);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1401, LogLevel.Information, "Token key set version {Version} ({Keys} keys) in use.")]
        public static partial void KeySetUpdated(ILogger logger, long version, int keys);

        [LoggerMessage(1402, LogLevel.Warning, "Could not fetch the orchestrator's token key set: {Reason}")]
        public static partial void FetchFailed(ILogger logger, string reason);

        [LoggerMessage(1403, LogLevel.Information, "Token key set version {Version} ({Keys} keys) loaded from {Path}.")]
        public static partial void KeySetLoaded(ILogger logger, string path, long version, int keys);

        [LoggerMessage(1404, LogLevel.Warning, "Token key cache {Path} is unusable: {Reason}")]
        public static partial void CacheUnusable(ILogger logger, string path, string reason);
    }
}
