namespace DeCloud.Packaging.Tests;

/// <summary>The consumer's Program.cs: uses each package's public API as a third party would.</summary>
internal static class ConsumerProgram
{
    public const string Source = """
        using DeCloud.Billing;
        using DeCloud.Core.Model;
        using DeCloud.Storage.Backups;

        var wallet = WalletAddress.Parse("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed");
        if (wallet.ToChecksumHex() != "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed") { return 1; }
        if (QualityTiers.TwelfthsPerPoint(QualityTier.Burstable) != 3) { return 2; }
        var policy = RetentionPolicy.Parse("24h 14d 4w 6m");
        Console.WriteLine($"retention: {policy}");
        Console.WriteLine($"fee: {MicroUsdc.Format(MicroUsdc.FromUsdcExact(1.5m))}");
        Console.WriteLine(typeof(DeCloud.Relay.RelayClient).FullName);
        Console.WriteLine(typeof(DeCloud.Virtualization.DomainXml.DomainDefinition).FullName);
        """;
}
