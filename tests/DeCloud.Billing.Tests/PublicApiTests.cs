using System.Reflection;
using DeCloud.Testing;

namespace DeCloud.Billing.Tests;

public sealed class PublicApiTests
{
    [Fact]
    public void PublicApi_HasNotChanged_MatchesApprovedFile() =>
        ApiApproval.Verify(Assembly.Load(new AssemblyName("DeCloud.Billing")));
}
