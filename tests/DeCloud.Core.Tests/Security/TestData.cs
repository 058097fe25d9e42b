using System.Text.Json;

namespace DeCloud.Core.Tests.Security;

/// <summary>Finds the published vectors in <c>../shared/testdata</c> beside the repository root (the folder with global.json).</summary>
internal static class TestData
{
    private static readonly Lazy<string> Root = new(FindRoot);

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root.Value, .. parts]);

    public static JsonDocument Json(params string[] parts) => JsonDocument.Parse(File.ReadAllText(Path(parts)));

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "global.json")))
            {
                var testdata = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir.FullName, "..", "shared", "testdata"));
                if (!Directory.Exists(testdata))
                {
                    throw new DirectoryNotFoundException($"The published test vectors are expected at {testdata} (../shared/testdata beside the repository root).");
                }

                return testdata;
            }
        }

        throw new DirectoryNotFoundException($"No global.json above {AppContext.BaseDirectory}: cannot locate the repository root.");
    }
}
