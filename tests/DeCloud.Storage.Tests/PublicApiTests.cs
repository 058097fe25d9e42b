using System.Reflection;
using DeCloud.Testing;

namespace DeCloud.Storage.Tests;

public sealed class PublicApiTests
{
    [Fact]
    public void PublicApi_HasNotChanged_MatchesApprovedFile() =>
        ApiApproval.Verify(Assembly.Load(new AssemblyName("DeCloud.Storage")));
}
