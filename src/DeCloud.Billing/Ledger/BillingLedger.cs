using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace DeCloud.Billing.Ledger;

/// <summary>Raised after a posting left a user's balance at or below zero.</summary>
public sealed class OverdrawnEventArgs : EventArgs
{
    internal OverdrawnEventArgs(WalletAddress user, long balanceMicroUsdc)
    {
        User = user;
        BalanceMicroUsdc = balanceMicroUsdc;
    }

    /// <summary>The user whose balance ran out.</summary>
    public WalletAddress User { get; }

    /// <summary>The balance after the posting (zero or negative), in micro-USDC.</summary>
    public long BalanceMicroUsdc { get; }
}

/// <summary>
/// An append-only, double-entry ledger of integer micro-USDC in SQLite. Every posting is a balanced
/// set of entries under a unique idempotency key (so the sum over all entries is always zero and a
/// re-post is a no-op); entries are never updated or deleted (triggers refuse it). Balances are kept
/// in the same transaction as the entries. A debit that leaves a user's balance at or below zero marks
/// the user overdrawn and raises <see cref="Overdrawn"/> after the commit.
/// </summary>
public sealed class BillingLedger
{
    internal const string Component = "ledger";

    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE ledger_transactions (
            id INTEGER PRIMARY KEY,
            idempotency_key TEXT NOT NULL UNIQUE,
            content_hash TEXT NOT NULL,
            memo TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL);
        CREATE TABLE ledger_entries (
            transaction_id INTEGER NOT NULL REFERENCES ledger_transactions(id),
            account TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount <> 0));
        CREATE INDEX ledger_entries_account ON ledger_entries(account);
        CREATE TABLE ledger_balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE ledger_overdrawn (account TEXT PRIMARY KEY, balance INTEGER NOT NULL, since_ms INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TRIGGER ledger_transactions_append_only_u BEFORE UPDATE ON ledger_transactions BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
        CREATE TRIGGER ledger_transactions_append_only_d BEFORE DELETE ON ledger_transactions BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
        CREATE TRIGGER ledger_entries_append_only_u BEFORE UPDATE ON ledger_entries BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
        CREATE TRIGGER ledger_entries_append_only_d BEFORE DELETE ON ledger_entries BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
        """,
    ];

    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>Opens the ledger in <paramref name="database"/>, creating its tables once.</summary>
    public BillingLedger(SqliteDatabase database, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(database);
        Database = database;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<BillingLedger>();
        database.Migrate(Component, Migrations);
    }

    /// <summary>Raised after a commit that left a user's balance at or below zero.</summary>
    public event EventHandler<OverdrawnEventArgs>? Overdrawn;

    internal SqliteDatabase Database { get; }

    /// <summary>Posts one balanced posting; a repeated key with the same entries is a no-op.</summary>
    public PostingOutcome Post(LedgerPosting posting)
    {
        ArgumentNullException.ThrowIfNull(posting);
        return InTransaction(w => w.Post(posting));
    }

    /// <summary>
    /// Posts many postings in one transaction (all or nothing); returns how many were new. A key that
    /// conflicts with an earlier posting aborts the whole batch.
    /// </summary>
    public int PostBatch(IEnumerable<LedgerPosting> postings)
    {
        ArgumentNullException.ThrowIfNull(postings);
        return InTransaction(w =>
        {
            var n = 0;
            foreach (var p in postings)
            {
                ArgumentNullException.ThrowIfNull(p);
                n += w.Post(p) == PostingOutcome.Posted ? 1 : 0;
            }

            return n;
        });
    }

    /// <summary>The balance of <paramref name="account"/> in micro-USDC (zero if it never moved).</summary>
    public long GetBalance(LedgerAccount account)
    {
        using var c = Database.Open();
        return GetBalance(c, null, account);
    }

    /// <summary>Every account with a non-zero balance, with its balance.</summary>
    public IReadOnlyDictionary<LedgerAccount, long> GetBalances()
    {
        using var c = Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT account, balance FROM ledger_balances WHERE balance <> 0 ORDER BY account;";
        using var r = cmd.ExecuteReader();
        var result = new Dictionary<LedgerAccount, long>();
        while (r.Read())
        {
            result[LedgerAccount.Parse(r.GetString(0))] = r.GetInt64(1);
        }

        return result;
    }

    /// <summary>The sum of every entry ever posted: zero unless the database was tampered with.</summary>
    public long SumOfAllEntries()
    {
        using var c = Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COALESCE(SUM(amount), 0) FROM ledger_entries;";
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>The number of postings written.</summary>
    public long PostingCount()
    {
        using var c = Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM ledger_transactions;";
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>True when a posting with <paramref name="idempotencyKey"/> exists.</summary>
    public bool Contains(string idempotencyKey)
    {
        using var c = Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT 1 FROM ledger_transactions WHERE idempotency_key = $k;";
        cmd.Parameters.AddWithValue("$k", idempotencyKey);
        return cmd.ExecuteScalar() is not null;
    }

    /// <summary>Users whose balance ran out and has not been topped up since, with their balances.</summary>
    public IReadOnlyDictionary<WalletAddress, long> GetOverdrawnUsers()
    {
        using var c = Database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT account, balance FROM ledger_overdrawn ORDER BY account;";
        using var r = cmd.ExecuteReader();
        var result = new Dictionary<WalletAddress, long>();
        while (r.Read())
        {
            result[WalletAddress.Parse(r.GetString(0)["user:".Length..])] = r.GetInt64(1);
        }

        return result;
    }

    internal static long GetBalance(SqliteConnection c, SqliteTransaction? tx, LedgerAccount account)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT balance FROM ledger_balances WHERE account = $a;";
        cmd.Parameters.AddWithValue("$a", account.ToString());
        return cmd.ExecuteScalar() is long b ? b : 0;
    }

    /// <summary>
    /// Runs <paramref name="work"/> in one immediate SQLite transaction with a writer bound to it,
    /// commits, then raises the overdrawn events it collected.
    /// </summary>
    internal T InTransaction<T>(Func<LedgerWriter, T> work)
    {
        List<OverdrawnEventArgs> overdrawn;
        T result;
        using (var c = Database.Open())
        {
            using var tx = c.BeginTransaction(deferred: false);
            using var writer = new LedgerWriter(c, tx, _time.GetUtcNow().ToUnixTimeMilliseconds());
            result = work(writer);
            writer.FlushBalances();
            tx.Commit();
            overdrawn = writer.Overdrawn;
        }

        foreach (var e in overdrawn)
        {
            Log.Overdrawn(_logger, e.User.ToString(), MicroUsdc.Format(e.BalanceMicroUsdc));
            Overdrawn?.Invoke(this, e);
        }

        return result;
    }
}

/// <summary>Writes postings inside one open transaction with prepared statements.</summary>
internal sealed class LedgerWriter : IDisposable
{
    private readonly SqliteCommand _insertTx;
    private readonly SqliteCommand _findTx;
    private readonly SqliteCommand _insertEntry;
    private readonly SqliteCommand _upsertBalance;
    private readonly SqliteCommand _readBalance;
    private readonly Dictionary<string, long> _balances = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirty = new(StringComparer.Ordinal);
    private readonly SqliteCommand _markOverdrawn;
    private readonly SqliteCommand _clearOverdrawn;
    private readonly long _nowMs;

    public LedgerWriter(SqliteConnection connection, SqliteTransaction transaction, long nowMs)
    {
        Connection = connection;
        Transaction = transaction;
        _nowMs = nowMs;
        _insertTx = Prepare(
            "INSERT INTO ledger_transactions (idempotency_key, content_hash, memo, created_at_ms) VALUES ($k, $h, $m, $t) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id;",
            "$k", "$h", "$m", "$t");
        _findTx = Prepare("SELECT content_hash FROM ledger_transactions WHERE idempotency_key = $k;", "$k");
        _insertEntry = Prepare("INSERT INTO ledger_entries (transaction_id, account, amount) VALUES ($id, $a, $v);", "$id", "$a", "$v");
        _upsertBalance = Prepare(
            "INSERT INTO ledger_balances (account, balance) VALUES ($a, $v) ON CONFLICT (account) DO UPDATE SET balance = excluded.balance;",
            "$a", "$v");
        _readBalance = Prepare("SELECT balance FROM ledger_balances WHERE account = $a;", "$a");
        _markOverdrawn = Prepare(
            "INSERT INTO ledger_overdrawn (account, balance, since_ms) VALUES ($a, $v, $t) ON CONFLICT (account) DO UPDATE SET balance = excluded.balance;",
            "$a", "$v", "$t");
        _clearOverdrawn = Prepare("DELETE FROM ledger_overdrawn WHERE account = $a;", "$a");
    }

    public SqliteConnection Connection { get; }

    public SqliteTransaction Transaction { get; }

    public long NowMs => _nowMs;

    public List<OverdrawnEventArgs> Overdrawn { get; } = [];

    public PostingOutcome Post(LedgerPosting posting)
    {
        _insertTx.Parameters[0].Value = posting.IdempotencyKey;
        _insertTx.Parameters[1].Value = posting.ContentHash;
        _insertTx.Parameters[2].Value = posting.Memo;
        _insertTx.Parameters[3].Value = _nowMs;
        var id = _insertTx.ExecuteScalar();
        if (id is not long txId)
        {
            _findTx.Parameters[0].Value = posting.IdempotencyKey;
            var existing = _findTx.ExecuteScalar() as string;
            return string.Equals(existing, posting.ContentHash, StringComparison.Ordinal)
                ? PostingOutcome.Duplicate
                : throw new IdempotencyConflictException(posting.IdempotencyKey, "posting");
        }

        foreach (var e in posting.Entries)
        {
            var account = e.Account.ToString();
            _insertEntry.Parameters[0].Value = txId;
            _insertEntry.Parameters[1].Value = account;
            _insertEntry.Parameters[2].Value = e.AmountMicroUsdc;
            _insertEntry.ExecuteNonQuery();
            var balance = checked(Balance(account) + e.AmountMicroUsdc);
            _balances[account] = balance;
            _dirty.Add(account);
            if (e.Account.Kind == LedgerAccountKind.UserBalance)
            {
                TrackOverdraft(e, account, balance);
            }
        }

        return PostingOutcome.Posted;
    }

    public long Balance(LedgerAccount account) => Balance(account.ToString());

    /// <summary>Writes the balances changed in this transaction (once per account, not once per entry).</summary>
    public void FlushBalances()
    {
        foreach (var account in _dirty)
        {
            _upsertBalance.Parameters[0].Value = account;
            _upsertBalance.Parameters[1].Value = _balances[account];
            _upsertBalance.ExecuteNonQuery();
        }

        _dirty.Clear();
    }

    public SqliteCommand Prepare(string sql, params string[] parameters) => Prepare(Connection, Transaction, sql, parameters);

    /// <summary>A command on <paramref name="connection"/> in <paramref name="transaction"/> with named, unset parameters.</summary>
    public static SqliteCommand Prepare(SqliteConnection connection, SqliteTransaction? transaction, string sql, params string[] parameters)
    {
        var cmd = connection.CreateCommand();
        cmd.Transaction = transaction;
        cmd.CommandText = sql;
        foreach (var p in parameters)
        {
            cmd.Parameters.Add(new SqliteParameter { ParameterName = p });
        }

        return cmd;
    }

    public void Dispose()
    {
        _insertTx.Dispose();
        _findTx.Dispose();
        _insertEntry.Dispose();
        _upsertBalance.Dispose();
        _readBalance.Dispose();
        _markOverdrawn.Dispose();
        _clearOverdrawn.Dispose();
    }

    private long Balance(string account)
    {
        if (!_balances.TryGetValue(account, out var balance))
        {
            _readBalance.Parameters[0].Value = account;
            balance = _readBalance.ExecuteScalar() is long b ? b : 0;
            _balances[account] = balance;
        }

        return balance;
    }

    private void TrackOverdraft(LedgerEntry e, string account, long balance)
    {
        if (e.AmountMicroUsdc < 0 && balance <= 0)
        {
            _markOverdrawn.Parameters[0].Value = account;
            _markOverdrawn.Parameters[1].Value = balance;
            _markOverdrawn.Parameters[2].Value = _nowMs;
            _markOverdrawn.ExecuteNonQuery();
            Overdrawn.Add(new OverdrawnEventArgs(WalletAddress.Parse(account["user:".Length..]), balance));
        }
        else if (e.AmountMicroUsdc > 0 && balance > 0)
        {
            _clearOverdrawn.Parameters[0].Value = account;
            _clearOverdrawn.ExecuteNonQuery();
        }
    }
}
