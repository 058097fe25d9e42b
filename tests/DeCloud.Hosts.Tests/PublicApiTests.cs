using System.Reflection;
using DeCloud.Testing;
using PublicApiGenerator;

namespace DeCloud.Hosts.Tests;

/// <summary>
/// Locks the public surface of the three host packages. One test project covers them, so the approved
/// files live here (<c>tests/DeCloud.Hosts.Tests/&lt;Assembly&gt;.approved.txt</c>) rather than in a
/// per-assembly test folder; <c>DECLOUD_APPROVE=1</c> accepts a change, as with <see cref="ApiApproval"/>.
/// </summary>
public sealed class PublicApiTests
{
    [Theory]
    [InlineData("DeCloud.Protocol")]
    [InlineData("DeCloud.Orchestrator")]
    [InlineData("DeCloud.Agent")]
    public void PublicApi_HasNotChanged_MatchesApprovedFile(string name)
    {
        var api = Assembly.Load(new AssemblyName(name)).GeneratePublicApi(new ApiGeneratorOptions
        {
            ExcludeAttributes = ["System.Runtime.Versioning.TargetFrameworkAttribute", "System.Reflection.AssemblyMetadataAttribute"],
        }).ReplaceLineEndings("\n");
        var approvedPath = Path.Combine(RepoPaths.Root, "tests", "DeCloud.Hosts.Tests", name + ".approved.txt");
        if (Environment.GetEnvironmentVariable("DECLOUD_APPROVE") == "1")
        {
            File.WriteAllText(approvedPath, api);
        }

        var approved = File.Exists(approvedPath) ? File.ReadAllText(approvedPath).ReplaceLineEndings("\n") : string.Empty;
        Assert.True(approved == api, $"The public API of {name} changed; if intended, run with DECLOUD_APPROVE=1 to update {approvedPath}.\n{api}");
    }
}
