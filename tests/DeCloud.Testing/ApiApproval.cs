using System.Reflection;
using PublicApiGenerator;
using Xunit;

namespace DeCloud.Testing;

/// <summary>
/// Locks a package's public surface: the generated API text must equal the committed
/// <c>tests/&lt;Assembly&gt;.Tests/&lt;Assembly&gt;.approved.txt</c>. On a difference the new text is
/// written to <c>.received.txt</c> beside it; set <c>DECLOUD_APPROVE=1</c> to accept it.
/// </summary>
public static class ApiApproval
{
    /// <summary>Compares the public API of <paramref name="assembly"/> with its approved file.</summary>
    public static void Verify(Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        var api = assembly.GeneratePublicApi(new ApiGeneratorOptions
        {
            ExcludeAttributes =
            [
                "System.Runtime.Versioning.TargetFrameworkAttribute",
                "System.Reflection.AssemblyMetadataAttribute",
            ],
        }).ReplaceLineEndings("\n");

        var name = assembly.GetName().Name;
        var dir = Path.Combine(RepoPaths.Root, "tests", name + ".Tests");
        var approvedPath = Path.Combine(dir, $"{name}.approved.txt");
        var receivedPath = Path.Combine(dir, $"{name}.received.txt");

        if (Environment.GetEnvironmentVariable("DECLOUD_APPROVE") == "1")
        {
            File.WriteAllText(approvedPath, api);
        }

        var approved = File.Exists(approvedPath) ? File.ReadAllText(approvedPath).ReplaceLineEndings("\n") : string.Empty;
        if (approved != api)
        {
            File.WriteAllText(receivedPath, api);
            Assert.Fail($"The public API of {name} changed. Review {receivedPath} and, if intended, " +
                        $"run the tests with DECLOUD_APPROVE=1 to update {approvedPath}.");
        }
        else if (File.Exists(receivedPath))
        {
            File.Delete(receivedPath);
        }
    }
}
