using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;
using DeCloud.Core.Sqlite;
using Microsoft.Data.Sqlite;

namespace DeCloud.Core.Tests;

/// <summary>A SQLite file in a fresh temp folder; "restart" = open a new SqliteDatabase on the same file.</summary>
internal sealed class TempDatabase : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("decloud-core-").FullName;

    public TempDatabase() => Path = System.IO.Path.Combine(_dir, "control-plane.db");

    public string Path { get; }

    public SqliteDatabase Open() => new(Path);

    public long Scalar(string sql)
    {
        using var c = Open().Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}

internal static class TestData
{
    public static readonly WalletAddress Wallet = WalletAddress.Parse("0x52908400098527886e0f7030069857d2e4169ee7");

    public static readonly DateTimeOffset Start = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    public static VmSpec Spec(int points = 2) => new(Wallet, new Resources(points, 2048, 20));

    public static NodeId Node(int i) => NodeId.FromMachine($"machine-{i}", Wallet);

    public static NodeRegistration Registration(
        int i, string region = "eu-west", string[]? tags = null, decimal price = 0.01m, double score = 8000, string[]? gpus = null,
        NodeConnectivity connectivity = NodeConnectivity.Public, string? endpoint = "203.0.113.7:7443", string agent = "1.0.0") =>
        new(Node(i), Wallet, new NodeHardware(8, "AMD EPYC 7443P", score, 32768, 500, gpus), CpuArchitecture.X86_64, region,
            tags ?? ["ssd"], $"node {i}", new NodePricing(price, 0.002m, 0.0001m), connectivity,
            connectivity == NodeConnectivity.Public ? endpoint : null, agent);
}
