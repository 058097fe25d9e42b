using System.Security.Cryptography;
using DeCloud.Core.Sqlite;

namespace DeCloud.Core.Security.Siwe;

/// <summary>Server-issued sign-in nonces, each consumable exactly once.</summary>
public interface ISiweNonceStore
{
    /// <summary>Stores <paramref name="nonce"/> as issued until <paramref name="expiresAt"/>.</summary>
    ValueTask AddAsync(string nonce, DateTimeOffset issuedAt, DateTimeOffset expiresAt, CancellationToken cancellationToken = default);

    /// <summary>
    /// Atomically consumes <paramref name="nonce"/>: true for exactly one caller while it is issued
    /// and unexpired at <paramref name="now"/>; false for unknown, expired or already consumed nonces.
    /// </summary>
    ValueTask<bool> TryConsumeAsync(string nonce, DateTimeOffset now, CancellationToken cancellationToken = default);
}

/// <summary>
/// Nonces in the shared SQLite database (table <c>siwe_nonces</c>): consumption is a single
/// <c>DELETE ... WHERE nonce = $n AND expires_at_ms &gt; $now</c>, so of any number of concurrent
/// attempts, on any connection or process, exactly one succeeds.
/// </summary>
public sealed class SqliteSiweNonceStore : ISiweNonceStore
{
    private readonly SqliteDatabase _database;

    /// <summary>Creates the store and applies the <c>security</c> migrations.</summary>
    public SqliteSiweNonceStore(SqliteDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
        SecuritySchema.Apply(database);
    }

    /// <summary>A fresh random nonce: 24 letters and digits (about 143 bits).</summary>
    public static string NewNonce() =>
        RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 24);

    /// <inheritdoc />
    public async ValueTask AddAsync(string nonce, DateTimeOffset issuedAt, DateTimeOffset expiresAt, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(nonce);
        using var c = _database.Open();
        using var tx = c.BeginTransaction();
        using (var purge = c.Command("DELETE FROM siwe_nonces WHERE expires_at_ms <= $now;", tx)
                   .With("$now", issuedAt.ToUnixMs()))
        {
            await purge.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        using (var insert = c.Command("INSERT INTO siwe_nonces (nonce, issued_at_ms, expires_at_ms) VALUES ($n, $i, $e);", tx)
                   .With("$n", nonce).With("$i", issuedAt.ToUnixMs()).With("$e", expiresAt.ToUnixMs()))
        {
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryConsumeAsync(string nonce, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(nonce);
        using var c = _database.Open();
        using var cmd = c.Command("DELETE FROM siwe_nonces WHERE nonce = $n AND expires_at_ms > $now;")
            .With("$n", nonce).With("$now", now.ToUnixMs());
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }
}
