using DeCloud.Testing;

namespace DeCloud.Billing.Tests.Chain;

/// <summary>One hardhat node for every chain test of this project.</summary>
[CollectionDefinition(Name)]
public sealed class HardhatCollection : ICollectionFixture<HardhatChain>
{
    public const string Name = "hardhat";
}
