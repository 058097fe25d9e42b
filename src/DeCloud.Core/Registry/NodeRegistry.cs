using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Core.Registry;

/// <summary>
/// The node registry: registrations, heartbeats, online/offline status, reputation (30-day rolling
/// uptime from failed heartbeats per day), lifetime counters and node search. State lives in memory
/// and in an <see cref="INodeStore"/>; every change is stored before it is visible and before
/// observers hear of it. Heartbeats are written in batches (group commit): a heartbeat's task
/// completes when its batch is durable.
/// </summary>
public sealed class NodeRegistry : IAsyncDisposable
{
    private static readonly Meter Meter = new("DeCloud.Core");
    private static readonly Counter<long> Heartbeats = Meter.CreateCounter<long>("decloud.registry.heartbeats", "{heartbeat}", "Heartbeats stored.");
    private static readonly Counter<long> FailedCounter = Meter.CreateCounter<long>("decloud.registry.failed_heartbeats", "{heartbeat}", "Heartbeats counted as failed.");
    private static readonly Counter<long> StatusChanges = Meter.CreateCounter<long>("decloud.registry.status_changes", "{change}", "Nodes going offline or online.");

    private readonly INodeStore _store;
    private readonly NodeRegistryOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ComputePointNormalizer _normalizer;
    private readonly ConcurrentDictionary<NodeId, NodeEntry> _nodes = new();
    private readonly SemaphoreSlim _registrations = new(1, 1);
    private readonly SemaphoreSlim _loadGate = new(1, 1);
    private readonly HeartbeatWriter _writer;
    private readonly Lock _observerGate = new();
    private INodeRegistryObserver[] _observers;
    private volatile bool _loaded;
    private DateTimeOffset _countFrom;
    private long _prunedBefore = long.MinValue;

    /// <summary>Creates a registry over <paramref name="store"/>; validates <paramref name="options"/>. Nodes are loaded on first use.</summary>
    public NodeRegistry(
        INodeStore store, NodeRegistryOptions? options = null, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null,
        IEnumerable<INodeRegistryObserver>? observers = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        _options = options ?? new NodeRegistryOptions();
        _options.Validate();
        _store = store;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<NodeRegistry>();
        _normalizer = new ComputePointNormalizer(_options.BaselineScorePerPoint);
        _observers = observers?.ToArray() ?? [];
        _writer = new HeartbeatWriter(store, _options.HeartbeatBatchSize);
    }

    /// <summary>The options in use.</summary>
    public NodeRegistryOptions Options => _options;

    internal long HeartbeatBatches => _writer.Batches;

    /// <summary>
    /// Subscribes to changes. To mirror the registry, subscribe first, then read <see cref="GetAllAsync"/>;
    /// dispose the result to unsubscribe.
    /// </summary>
    public IDisposable Subscribe(INodeRegistryObserver observer)
    {
        ArgumentNullException.ThrowIfNull(observer);
        lock (_observerGate)
        {
            _observers = [.. _observers, observer];
        }

        return new Subscription(this, observer);
    }

    /// <summary>Loads the stored nodes (done automatically on first use; call it to fail fast at start).</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken = default)
    {
        if (_loaded)
        {
            return;
        }

        await _loadGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_loaded)
            {
                return;
            }

            var stored = await _store.LoadAllAsync(cancellationToken).ConfigureAwait(false);
            foreach (var s in stored)
            {
                var entry = new NodeEntry(s.Registration, Capacity(s.Registration), s.RegisteredAt, s.UpdatedAt, s.Status);
                foreach (var f in s.FailedByDay)
                {
                    entry.FailedByDay[f.Day] = f.Count;
                }

                entry.VmsHosted = s.VmsHosted;
                entry.VmsCompleted = s.VmsCompletedCleanly;
                _nodes[s.Registration.NodeId] = entry;
            }

            // Heartbeats that fell due while this process was not running are not held against nodes.
            _countFrom = _time.GetUtcNowMs();
            _loaded = true;
            Log.Loaded(_logger, stored.Count);
        }
        finally
        {
            _loadGate.Release();
        }
    }

    /// <summary>
    /// Registers a node, or updates it when its id is known (status and reputation are kept).
    /// Throws <see cref="DeCloudValidationException"/> naming the bad field; then nothing is stored.
    /// </summary>
    public async Task<NodeRecord> RegisterAsync(NodeRegistration registration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registration);
        var normalized = registration.Normalize();
        var capacity = Capacity(normalized);
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        await _registrations.WaitAsync(cancellationToken).ConfigureAwait(false);
        NodeChange change;
        try
        {
            var now = _time.GetUtcNowMs();
            if (_nodes.TryGetValue(normalized.NodeId, out var existing))
            {
                NodeStatusUpdate status;
                lock (existing)
                {
                    status = existing.ToStatus([]);
                }

                await _store.SaveRegistrationAsync(normalized, existing.RegisteredAt, now, status, cancellationToken).ConfigureAwait(false);
                lock (existing)
                {
                    existing.Registration = normalized;
                    existing.Capacity = capacity;
                    existing.UpdatedAt = now;
                }

                change = new NodeChange(NodeChangeKind.Updated, normalized.NodeId, ToRecord(existing, now));
                Log.Updated(_logger, normalized.NodeId, normalized.AgentVersion);
            }
            else
            {
                var status = new NodeStatusUpdate(normalized.NodeId, now, NodeStatus.Online, 0, default, [], []);
                await _store.SaveRegistrationAsync(normalized, now, now, status, cancellationToken).ConfigureAwait(false);
                var entry = new NodeEntry(normalized, capacity, now, now, status);
                _nodes[normalized.NodeId] = entry;
                change = new NodeChange(NodeChangeKind.Registered, normalized.NodeId, ToRecord(entry, now));
                Log.Registered(_logger, normalized.NodeId, normalized.Region, capacity.ComputePoints);
            }
        }
        finally
        {
            _registrations.Release();
        }

        Notify(change);
        return change.Node;
    }

    /// <summary>
    /// Records a heartbeat: resource use and VM states, liveness (an offline node comes back online),
    /// and failed heartbeats since the previous one. Completes when the heartbeat is durable.
    /// A heartbeat from an unregistered node throws <see cref="DeCloudNotFoundException"/>; a malformed
    /// one <see cref="DeCloudValidationException"/>; in both cases nothing is stored.
    /// </summary>
    public async Task<NodeStatus> RecordHeartbeatAsync(NodeHeartbeat heartbeat, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(heartbeat);
        heartbeat.Validate();
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        if (!_nodes.TryGetValue(heartbeat.NodeId, out var entry))
        {
            throw new DeCloudNotFoundException("nodeId", heartbeat.NodeId.Value, "registered node");
        }

        var now = _time.GetUtcNowMs();
        bool cameOnline;
        long failed;
        Task durable;
        lock (entry)
        {
            var newly = new List<FailedHeartbeats>(0);
            var missed = Reputation.MissedBy(entry.LastSeenAt, now, _options.HeartbeatInterval);
            Reputation.Attribute(entry.LastSeenAt, _options.HeartbeatInterval, entry.MissedCounted + 1, missed, _countFrom, newly);
            failed = entry.AddFailed(newly);
            cameOnline = entry.Status == NodeStatus.Offline;
            entry.Status = NodeStatus.Online;
            entry.LastSeenAt = now > entry.LastSeenAt ? now : entry.LastSeenAt;
            entry.MissedCounted = 0;
            entry.Used = heartbeat.Used;
            entry.Vms = heartbeat.Vms is { Count: > 0 } vms ? vms.ToArray() : [];

            // Enqueued under the node's lock, so a node's rows reach the store in order.
            durable = _writer.Enqueue(entry.ToStatus(newly));
        }

        await durable.WaitAsync(cancellationToken).ConfigureAwait(false);
        Heartbeats.Add(1);
        if (failed > 0)
        {
            FailedCounter.Add(failed);
        }

        if (cameOnline)
        {
            StatusChanges.Add(1, new KeyValuePair<string, object?>("status", "online"));
            Log.Online(_logger, heartbeat.NodeId);
            Notify(new NodeChange(NodeChangeKind.Online, heartbeat.NodeId, ToRecord(entry, now)));
        }

        return NodeStatus.Online;
    }

    /// <summary>
    /// One health check: counts heartbeats that failed since the last check (each exactly once), marks
    /// nodes silent for longer than <see cref="NodeRegistryOptions.OfflineAfter"/> offline, and drops
    /// reputation entries older than the window. Returns how many nodes went offline.
    /// <see cref="NodeHealthMonitor"/> calls it periodically.
    /// </summary>
    public async Task<int> CheckHealthAsync(CancellationToken cancellationToken = default)
    {
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        var now = _time.GetUtcNowMs();
        var writes = new List<Task>();
        var wentOffline = new List<NodeEntry>();
        long failed = 0;
        foreach (var entry in _nodes.Values)
        {
            lock (entry)
            {
                var missed = Reputation.MissedBy(entry.LastSeenAt, now, _options.HeartbeatInterval);
                var changed = false;
                var newly = new List<FailedHeartbeats>(0);
                if (missed > entry.MissedCounted)
                {
                    Reputation.Attribute(entry.LastSeenAt, _options.HeartbeatInterval, entry.MissedCounted + 1, missed, _countFrom, newly);
                    failed += entry.AddFailed(newly);
                    entry.MissedCounted = missed;
                    changed = true;
                }

                if (entry.Status == NodeStatus.Online && now - entry.LastSeenAt > _options.OfflineAfter)
                {
                    entry.Status = NodeStatus.Offline;
                    wentOffline.Add(entry);
                    changed = true;
                }

                if (changed)
                {
                    writes.Add(_writer.Enqueue(entry.ToStatus(newly)));
                }
            }
        }

        await Task.WhenAll(writes).WaitAsync(cancellationToken).ConfigureAwait(false);
        if (failed > 0)
        {
            FailedCounter.Add(failed);
        }

        await PruneAsync(now, cancellationToken).ConfigureAwait(false);
        foreach (var entry in wentOffline)
        {
            StatusChanges.Add(1, new KeyValuePair<string, object?>("status", "offline"));
            Log.Offline(_logger, entry.Registration.NodeId, entry.LastSeenAt);
            Notify(new NodeChange(NodeChangeKind.Offline, entry.Registration.NodeId, ToRecord(entry, now)));
        }

        return wentOffline.Count;
    }

    /// <summary>Removes a node and its history; false when it was not registered.</summary>
    public async Task<bool> RemoveAsync(NodeId nodeId, CancellationToken cancellationToken = default)
    {
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        await _registrations.WaitAsync(cancellationToken).ConfigureAwait(false);
        NodeRecord last;
        try
        {
            if (!_nodes.TryGetValue(nodeId, out var entry))
            {
                return false;
            }

            await _store.RemoveAsync(nodeId, cancellationToken).ConfigureAwait(false);
            _nodes.TryRemove(nodeId, out _);
            last = ToRecord(entry, _time.GetUtcNowMs());
        }
        finally
        {
            _registrations.Release();
        }

        Log.Removed(_logger, nodeId);
        Notify(new NodeChange(NodeChangeKind.Removed, nodeId, last));
        return true;
    }

    /// <summary>The node, or null when it is not registered.</summary>
    public async Task<NodeRecord?> GetAsync(NodeId nodeId, CancellationToken cancellationToken = default)
    {
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        return _nodes.TryGetValue(nodeId, out var entry) ? ToRecord(entry, _time.GetUtcNowMs()) : null;
    }

    /// <summary>Every registered node.</summary>
    public async Task<IReadOnlyList<NodeRecord>> GetAllAsync(CancellationToken cancellationToken = default)
    {
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        var now = _time.GetUtcNowMs();
        return _nodes.Values.Select(e => ToRecord(e, now)).OrderBy(n => n.Id.Value, StringComparer.Ordinal).ToArray();
    }

    /// <summary>
    /// The node from memory, without waiting, or null when it is not registered. For hosts whose callers are
    /// synchronous; <see cref="InitializeAsync"/> must have completed (else <see cref="InvalidOperationException"/>).
    /// </summary>
    public NodeRecord? Find(NodeId nodeId)
    {
        ThrowIfNotLoaded();
        return _nodes.TryGetValue(nodeId, out var entry) ? ToRecord(entry, _time.GetUtcNowMs()) : null;
    }

    /// <summary>
    /// Every registered node from memory, ordered by id, without waiting. <see cref="InitializeAsync"/> must
    /// have completed (else <see cref="InvalidOperationException"/>).
    /// </summary>
    public IReadOnlyList<NodeRecord> Snapshot()
    {
        ThrowIfNotLoaded();
        var now = _time.GetUtcNowMs();
        var list = new List<NodeRecord>(_nodes.Count);
        foreach (var entry in _nodes.Values)
        {
            list.Add(ToRecord(entry, now));
        }

        list.Sort(static (a, b) => string.CompareOrdinal(a.Id.Value, b.Id.Value));
        return list;
    }

    /// <summary>Searches nodes; throws <see cref="DeCloudValidationException"/> for a bad query.</summary>
    public async Task<IReadOnlyList<NodeRecord>> SearchAsync(NodeSearchQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        var normalized = query.Normalize();
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        var now = _time.GetUtcNowMs();
        var matches = new List<NodeRecord>();
        foreach (var entry in _nodes.Values)
        {
            var record = ToRecord(entry, now);
            if (normalized.Matches(record))
            {
                matches.Add(record);
            }
        }

        matches.Sort(NodeOrder.For(query.Sort));
        return matches.Skip(query.Offset).Take(query.Limit).ToArray();
    }

    /// <summary>
    /// Featured nodes: the top <see cref="NodeRegistryOptions.FeaturedCount"/> online nodes with uptime above
    /// <see cref="NodeRegistryOptions.FeaturedMinUptime"/>, by uptime, then clean completions, then price.
    /// </summary>
    public async Task<IReadOnlyList<NodeRecord>> GetFeaturedAsync(CancellationToken cancellationToken = default)
    {
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        var now = _time.GetUtcNowMs();
        var candidates = new List<NodeRecord>();
        foreach (var entry in _nodes.Values)
        {
            var record = ToRecord(entry, now);
            if (record.IsOnline && record.Uptime > _options.FeaturedMinUptime)
            {
                candidates.Add(record);
            }
        }

        candidates.Sort((a, b) =>
        {
            var c = b.Uptime.CompareTo(a.Uptime);
            return c != 0 ? c : (c = b.VmsCompletedCleanly.CompareTo(a.VmsCompletedCleanly)) != 0 ? c : NodeOrder.ByPrice(a, b);
        });
        return candidates.Take(_options.FeaturedCount).ToArray();
    }

    /// <summary>
    /// Counts a VM hosted by the node, once per <paramref name="idempotencyKey"/> (pass the effect's
    /// <see cref="Lifecycle.VmEffectContext.IdempotencyKey"/> so a retried effect does not count twice).
    /// Returns true when it counted now.
    /// </summary>
    public Task<bool> RecordVmHostedAsync(NodeId nodeId, string idempotencyKey, CancellationToken cancellationToken = default) =>
        IncrementAsync(nodeId, NodeCounter.VmsHosted, idempotencyKey, cancellationToken);

    /// <summary>Counts a VM that ended cleanly on the node, once per <paramref name="idempotencyKey"/>.</summary>
    public Task<bool> RecordVmCompletedCleanlyAsync(NodeId nodeId, string idempotencyKey, CancellationToken cancellationToken = default) =>
        IncrementAsync(nodeId, NodeCounter.VmsCompletedCleanly, idempotencyKey, cancellationToken);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _writer.DisposeAsync().ConfigureAwait(false);
        _registrations.Dispose();
        _loadGate.Dispose();
    }

    private void ThrowIfNotLoaded()
    {
        if (!_loaded)
        {
            throw new InvalidOperationException("The node registry is not loaded yet; await InitializeAsync first.");
        }
    }

    private async Task<bool> IncrementAsync(NodeId nodeId, NodeCounter counter, string idempotencyKey, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(idempotencyKey) || idempotencyKey.Length > 512)
        {
            throw Validate.Fail("idempotencyKey", "must be 1-512 characters.");
        }

        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        if (!_nodes.TryGetValue(nodeId, out var entry))
        {
            throw new DeCloudNotFoundException("nodeId", nodeId.IsEmpty ? string.Empty : nodeId.Value, "registered node");
        }

        if (!await _store.IncrementCounterAsync(nodeId, counter, idempotencyKey, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        lock (entry)
        {
            if (counter == NodeCounter.VmsHosted)
            {
                entry.VmsHosted++;
            }
            else
            {
                entry.VmsCompleted++;
            }
        }

        return true;
    }

    private async Task PruneAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var firstKept = Reputation.FirstDayOfWindow(now, _options.ReputationWindowDays);
        if (firstKept <= Interlocked.Read(ref _prunedBefore))
        {
            return;
        }

        var rows = await _store.PruneFailedHeartbeatsAsync(firstKept, cancellationToken).ConfigureAwait(false);
        foreach (var entry in _nodes.Values)
        {
            lock (entry)
            {
                entry.DropBefore(firstKept);
            }
        }

        Interlocked.Exchange(ref _prunedBefore, firstKept);
        Log.Pruned(_logger, rows, firstKept);
    }

    private Resources Capacity(NodeRegistration r)
    {
        var gpus = r.Hardware.Gpus ?? [];
        return new Resources(_normalizer.Normalize(r.Hardware.BenchmarkScore), r.Hardware.MemoryMiB, r.Hardware.StorageGiB, gpus.Count, gpus.Count > 0 ? gpus[0] : null);
    }

    private NodeRecord ToRecord(NodeEntry e, DateTimeOffset now)
    {
        lock (e)
        {
            var firstDay = Reputation.FirstDayOfWindow(now, _options.ReputationWindowDays);
            long failed = 0;
            foreach (var (day, count) in e.FailedByDay)
            {
                if (day >= firstDay)
                {
                    failed += count;
                }
            }

            var uptime = Reputation.Uptime(failed, e.RegisteredAt, now, _options.HeartbeatInterval, _options.ReputationWindowDays);
            return new NodeRecord(e.Registration, e.Capacity, e.Status, e.RegisteredAt, e.UpdatedAt, e.LastSeenAt, e.Used, e.Vms, uptime, failed, e.VmsHosted, e.VmsCompleted);
        }
    }

    private void Notify(NodeChange change)
    {
        foreach (var observer in Volatile.Read(ref _observers))
        {
            try
            {
                observer.OnNodeChanged(change);
            }
            catch (Exception ex)
            {
                Log.ObserverFailed(_logger, ex, change.Kind, change.NodeId);
            }
        }
    }

    private void Unsubscribe(INodeRegistryObserver observer)
    {
        lock (_observerGate)
        {
            _observers = _observers.Where(o => !ReferenceEquals(o, observer)).ToArray();
        }
    }

    private sealed class Subscription(NodeRegistry registry, INodeRegistryObserver observer) : IDisposable
    {
        public void Dispose() => registry.Unsubscribe(observer);
    }

    private sealed class NodeEntry(NodeRegistration registration, Resources capacity, DateTimeOffset registeredAt, DateTimeOffset updatedAt, NodeStatusUpdate status)
    {
        public NodeRegistration Registration { get; set; } = registration;

        public Resources Capacity { get; set; } = capacity;

        public DateTimeOffset RegisteredAt { get; } = registeredAt;

        public DateTimeOffset UpdatedAt { get; set; } = updatedAt;

        public DateTimeOffset LastSeenAt { get; set; } = status.LastSeenAt;

        public NodeStatus Status { get; set; } = status.Status;

        public long MissedCounted { get; set; } = status.MissedCounted;

        public Resources Used { get; set; } = status.Used;

        public IReadOnlyList<VmStatusReport> Vms { get; set; } = status.Vms;

        public Dictionary<long, int> FailedByDay { get; } = [];

        public long VmsHosted { get; set; }

        public long VmsCompleted { get; set; }

        public NodeStatusUpdate ToStatus(IReadOnlyList<FailedHeartbeats> newlyFailed) =>
            new(Registration.NodeId, LastSeenAt, Status, MissedCounted, Used, Vms, newlyFailed);

        public long AddFailed(List<FailedHeartbeats> newly)
        {
            long total = 0;
            foreach (var f in newly)
            {
                FailedByDay[f.Day] = FailedByDay.GetValueOrDefault(f.Day) + f.Count;
                total += f.Count;
            }

            return total;
        }

        public void DropBefore(long firstKeptDay)
        {
            foreach (var day in FailedByDay.Keys.Where(d => d < firstKeptDay).ToArray())
            {
                FailedByDay.Remove(day);
            }
        }
    }
}
