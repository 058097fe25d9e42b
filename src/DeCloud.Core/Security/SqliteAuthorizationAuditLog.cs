using System.Threading.Channels;
using DeCloud.Core.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Core.Security;

/// <summary>
/// A durable audit log in the shared SQLite database (table <c>authorization_audit</c>).
/// <see cref="Record"/> only enqueues (it never blocks a request); a background writer commits
/// batches. When the queue is full an entry is dropped, counted in <see cref="Dropped"/>, the metric
/// <c>decloud.security.audit.dropped</c> and a warning.
/// </summary>
public sealed partial class SqliteAuthorizationAuditLog : IAuthorizationAuditLog, IAsyncDisposable
{
    private const int BatchSize = 512;

    private readonly SqliteDatabase _database;
    private readonly Channel<Item> _queue;
    private readonly Task _writer;
    private readonly ILogger _logger;
    private long _dropped;

    /// <summary>Creates the log (applying the <c>security</c> migrations) and starts its writer.</summary>
    /// <param name="database">The shared database.</param>
    /// <param name="capacity">Entries queued at most before new ones are dropped. Default 65,536.</param>
    /// <param name="logger">Logs write failures and drops.</param>
    public SqliteAuthorizationAuditLog(SqliteDatabase database, int capacity = 65_536, ILogger<SqliteAuthorizationAuditLog>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 16);
        _database = database;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        SecuritySchema.Apply(database);
        _queue = Channel.CreateBounded<Item>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>Entries dropped because the queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <inheritdoc />
    public void Record(in AuthorizationAuditEntry entry)
    {
        if (!_queue.Writer.TryWrite(new Item(entry, null)))
        {
            if (Interlocked.Increment(ref _dropped) % 1000 == 1)
            {
                Log.Dropping(_logger, Dropped);
            }

            SecurityMetrics.Dropped();
        }
    }

    /// <summary>Completes when every entry recorded before the call is committed.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _queue.Writer.WriteAsync(new Item(default, done), cancellationToken).ConfigureAwait(false);
        await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The most recent entries (newest first), optionally only those of <paramref name="subject"/>.</summary>
    public async Task<IReadOnlyList<AuthorizationAuditEntry>> QueryAsync(string? subject = null, int limit = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        using var c = _database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = subject is null
            ? "SELECT at_ms, outcome, source, reason, subject, vm, project, scope FROM authorization_audit ORDER BY id DESC LIMIT $limit;"
            : "SELECT at_ms, outcome, source, reason, subject, vm, project, scope FROM authorization_audit WHERE subject = $s ORDER BY id DESC LIMIT $limit;";
        cmd.Parameters.AddWithValue("$limit", limit);
        if (subject is not null)
        {
            cmd.Parameters.AddWithValue("$s", subject.ToLowerInvariant());
        }

        var result = new List<AuthorizationAuditEntry>();
        using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add(new AuthorizationAuditEntry(
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(0)),
                reader.GetString(1) == "allow" ? AuthorizationOutcome.Allow : AuthorizationOutcome.Deny,
                reader.GetString(2),
                reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetString(4),
                reader.IsDBNull(5) ? null : Model.VmId.Parse(reader.GetString(5)),
                reader.IsDBNull(6) ? null : reader.GetString(6),
                (TokenScopes)reader.GetInt32(7)));
        }

        return result;
    }

    /// <summary>Stops accepting entries, commits what is queued, and stops the writer.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<AuthorizationAuditEntry>(BatchSize);
        var flushes = new List<TaskCompletionSource>();
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            flushes.Clear();
            while (batch.Count < BatchSize && reader.TryRead(out var item))
            {
                if (item.Flush is not null)
                {
                    flushes.Add(item.Flush);
                    break; // commit everything before the flush marker now
                }

                batch.Add(item.Entry);
            }

            if (batch.Count > 0)
            {
                try
                {
                    WriteBatch(batch);
                }
                catch (SqliteException e)
                {
                    Interlocked.Add(ref _dropped, batch.Count);
                    Log.WriteFailed(_logger, batch.Count, e);
                }
            }

            foreach (var f in flushes)
            {
                f.TrySetResult();
            }
        }
    }

    private void WriteBatch(List<AuthorizationAuditEntry> batch)
    {
        using var c = _database.Open();
        using var tx = c.BeginTransaction();
        using var cmd = c.Command("INSERT INTO authorization_audit (at_ms, outcome, source, reason, subject, vm, project, scope) VALUES ($at, $o, $src, $r, $s, $vm, $p, $scope);", tx);
        var at = cmd.Parameters.Add("$at", SqliteType.Integer);
        var outcome = cmd.Parameters.Add("$o", SqliteType.Text);
        var source = cmd.Parameters.Add("$src", SqliteType.Text);
        var reason = cmd.Parameters.Add("$r", SqliteType.Text);
        var subject = cmd.Parameters.Add("$s", SqliteType.Text);
        var vm = cmd.Parameters.Add("$vm", SqliteType.Text);
        var project = cmd.Parameters.Add("$p", SqliteType.Text);
        var scope = cmd.Parameters.Add("$scope", SqliteType.Integer);
        foreach (var e in batch)
        {
            at.Value = e.Timestamp.ToUnixTimeMilliseconds();
            outcome.Value = e.Outcome == AuthorizationOutcome.Allow ? "allow" : "deny";
            source.Value = e.Source;
            reason.Value = e.Reason;
            subject.Value = (object?)e.Subject?.ToLowerInvariant() ?? DBNull.Value;
            vm.Value = e.Vm is { } v ? v.ToString() : DBNull.Value;
            project.Value = (object?)e.Project ?? DBNull.Value;
            scope.Value = (int)e.Scope;
            cmd.ExecuteNonQuery();
        }

        tx.Commit();
    }

    private readonly record struct Item(AuthorizationAuditEntry Entry, TaskCompletionSource? Flush);

    private static partial class Log
    {
        [LoggerMessage(EventId = 5301, Level = LogLevel.Warning, Message = "Audit queue full: {Dropped} entries dropped so far")]
        public static partial void Dropping(ILogger logger, long dropped);

        [LoggerMessage(EventId = 5302, Level = LogLevel.Error, Message = "Could not write {Count} audit entries")]
        public static partial void WriteFailed(ILogger logger, int count, Exception error);
    }
}
