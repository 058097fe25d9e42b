using DeCloud.Billing.Chain;
using DeCloud.Billing.Escrow;
using DeCloud.Billing.Ledger;
using DeCloud.Billing.Metering;
using DeCloud.Billing.Pricing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace DeCloud.Billing.Tests;

public sealed class BillingServiceCollectionExtensionsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "decloud-billing-di", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public void AddDeCloudBilling_CalledTwice_RegistersEachServiceOnce()
    {
        var services = new ServiceCollection();

        services.AddDeCloudBilling(o => o.DatabasePath = Path.Combine(_dir, "b.db"));
        var count = services.Count;
        var builder = services.AddDeCloudBilling(o => o.DatabasePath = Path.Combine(_dir, "b.db"));

        Assert.Same(services, builder.Services);
        Assert.Equal(count + 1, services.Count); // only the second Configure delegate is added
        Assert.Single(services, d => d.ServiceType == typeof(BillingLedger));
        Assert.Single(services, d => d.ServiceType == typeof(IValidateOptions<BillingOptions>));
    }

    [Fact]
    public void AddDeCloudBilling_Resolve_SharesOneLedger()
    {
        using var sp = new ServiceCollection().AddDeCloudBilling(o => o.DatabasePath = Path.Combine(_dir, "b.db")).Services.BuildServiceProvider();

        var ledger = sp.GetRequiredService<BillingLedger>();
        Assert.NotNull(sp.GetRequiredService<UsageMeter>());
        Assert.NotNull(sp.GetRequiredService<TemplateEscrow>());
        Assert.NotNull(sp.GetRequiredService<NodePriceBook>());
        Assert.Same(ledger, sp.GetRequiredService<BillingLedger>());
        Assert.Equal("Chain", Assert.Throws<BillingValidationException>(() => sp.GetRequiredService<UsdcDeposits>()).Field);
    }

    [Fact]
    public void AddDeCloudBilling_BadOptions_ValidationNamesProperty()
    {
        using var sp = new ServiceCollection()
            .AddDeCloudBilling(o =>
            {
                o.DatabasePath = Path.Combine(_dir, "b.db");
                o.Metering.PlatformShare = 2m;
            }).Services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptionsMonitor<BillingOptions>>().CurrentValue);
        Assert.Contains("Metering.PlatformShare", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ftp://x", "Chain.RpcUrl")]
    [InlineData(null, "Chain.UsdcContract")]
    public void ChainOptions_Bad_NamesProperty(string? url, string field)
    {
        var o = new ChainOptions
        {
            RpcUrl = url is null ? new Uri("http://127.0.0.1:1/") : new Uri(url),
            UsdcContract = url is null ? "0x123" : "0x0000000000000000000000000000000000000001",
            DepositAddress = "0x0000000000000000000000000000000000000002",
        };
        Assert.Equal(field, Assert.Throws<BillingValidationException>(o.Validate).Field);
    }
}
