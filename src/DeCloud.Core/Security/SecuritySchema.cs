using DeCloud.Core.Sqlite;

namespace DeCloud.Core.Security;

/// <summary>The SQLite schema of the security component (component name <c>security</c>).</summary>
internal static class SecuritySchema
{
    public const string Component = "security";

    // Append only: never edit or reorder a shipped migration.
    public static readonly IReadOnlyList<string> Migrations =
    [
        """
        CREATE TABLE siwe_nonces (
            nonce TEXT NOT NULL PRIMARY KEY,
            issued_at_ms INTEGER NOT NULL,
            expires_at_ms INTEGER NOT NULL
        );
        CREATE INDEX siwe_nonces_expiry ON siwe_nonces (expires_at_ms);
        CREATE TABLE authorization_audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at_ms INTEGER NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('allow', 'deny')),
            source TEXT NOT NULL,
            reason TEXT NOT NULL,
            subject TEXT NULL,
            vm TEXT NULL,
            project TEXT NULL,
            scope INTEGER NOT NULL
        );
        CREATE INDEX authorization_audit_subject ON authorization_audit (subject, at_ms);
        """,
        """
        CREATE TABLE token_keys (
            kid TEXT NOT NULL PRIMARY KEY,
            private_key BLOB NOT NULL,
            created_at_ms INTEGER NOT NULL,
            retires_at_ms INTEGER NULL,
            is_current INTEGER NOT NULL CHECK (is_current IN (0, 1))
        );
        CREATE TABLE token_key_ring (
            id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        );
        """,
    ];

    public static void Apply(SqliteDatabase database) => database.Migrate(Component, Migrations);
}
