using System.Globalization;
using DeCloud.Core.Model;
using DeCloud.Core.Sqlite;

namespace DeCloud.Billing.Pricing;

/// <summary>
/// Operators' prices per node, in SQLite. Every update is floor-enforced: each stored rate is the
/// larger of what the operator asked and the platform floor. A node without prices is priced at the
/// platform defaults.
/// </summary>
public sealed class NodePriceBook
{
    internal const string Component = "pricing";

    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE node_prices (
            node_id TEXT PRIMARY KEY,
            cpu TEXT NOT NULL, memory TEXT NOT NULL, storage TEXT NOT NULL, gpu TEXT NOT NULL,
            updated_at_ms INTEGER NOT NULL) WITHOUT ROWID;
        """,
    ];

    private readonly SqliteDatabase _database;
    private readonly PricingOptions _options;
    private readonly TimeProvider _time;

    /// <summary>Opens the price book in <paramref name="database"/>.</summary>
    public NodePriceBook(SqliteDatabase database, PricingOptions options, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _database = database;
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        database.Migrate(Component, Migrations);
    }

    /// <summary>
    /// Stores the operator's prices for <paramref name="node"/>, each raised to the floor; returns what
    /// was stored. Negative or absurd rates are refused and nothing is stored.
    /// </summary>
    public ResourceRates SetOperatorPrices(NodeId node, ResourceRates requested)
    {
        ArgumentNullException.ThrowIfNull(requested);
        if (node.IsEmpty)
        {
            throw Check.Fail("nodeId", "must be a node id.");
        }

        var effective = requested.Validate("operatorPrices").AtLeast(_options.Floors);
        using var c = _database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            INSERT INTO node_prices (node_id, cpu, memory, storage, gpu, updated_at_ms) VALUES ($n, $c, $m, $s, $g, $t)
            ON CONFLICT (node_id) DO UPDATE SET cpu = excluded.cpu, memory = excluded.memory, storage = excluded.storage,
                gpu = excluded.gpu, updated_at_ms = excluded.updated_at_ms;
            """;
        cmd.Parameters.AddWithValue("$n", node.Value);
        cmd.Parameters.AddWithValue("$c", Text(effective.CpuPerPointHour));
        cmd.Parameters.AddWithValue("$m", Text(effective.MemoryPerGiBHour));
        cmd.Parameters.AddWithValue("$s", Text(effective.StoragePerGiBHour));
        cmd.Parameters.AddWithValue("$g", Text(effective.GpuPerHour));
        cmd.Parameters.AddWithValue("$t", _time.GetUtcNow().ToUnixTimeMilliseconds());
        cmd.ExecuteNonQuery();
        return effective;
    }

    /// <summary>
    /// The node's prices, raised to the current floors (floors may have gone up since the operator set
    /// them), or the platform defaults when the operator set none.
    /// </summary>
    public ResourceRates GetPrices(NodeId node)
    {
        if (node.IsEmpty)
        {
            throw Check.Fail("nodeId", "must be a node id.");
        }

        using var c = _database.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT cpu, memory, storage, gpu FROM node_prices WHERE node_id = $n;";
        cmd.Parameters.AddWithValue("$n", node.Value);
        using var r = cmd.ExecuteReader();
        if (!r.Read())
        {
            return _options.Defaults;
        }

        return new ResourceRates(Parse(r.GetString(0)), Parse(r.GetString(1)), Parse(r.GetString(2)), Parse(r.GetString(3)))
            .AtLeast(_options.Floors);
    }

    private static string Text(decimal d) => d.ToString(CultureInfo.InvariantCulture);

    private static decimal Parse(string s) => decimal.Parse(s, NumberStyles.Number, CultureInfo.InvariantCulture);
}
