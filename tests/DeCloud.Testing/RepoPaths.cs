namespace DeCloud.Testing;

/// <summary>Locates the repository and <c>../shared</c> from the test binaries, whatever the build's path map.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> RootPath = new(FindRoot);

    /// <summary>The repository root (the folder holding <c>global.json</c>).</summary>
    public static string Root => RootPath.Value;

    /// <summary>The read-only <c>shared/</c> folder beside the repository (DESIGN, STYLE, test vectors).</summary>
    public static string Shared => Path.GetFullPath(Path.Combine(Root, "..", "shared"));

    /// <summary>A test vector folder or file under <c>../shared/testdata</c>.</summary>
    public static string TestData(params string[] parts) => Path.Combine([Shared, "testdata", .. parts]);

    private static string FindRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            var dir = new DirectoryInfo(start);
            while (dir is not null)
            {
                if (File.Exists(Path.Combine(dir.FullName, "global.json")) && Directory.Exists(Path.Combine(dir.FullName, "src")))
                {
                    return dir.FullName;
                }

                dir = dir.Parent;
            }
        }

        throw new InvalidOperationException($"repository root (global.json) not found above {AppContext.BaseDirectory}");
    }
}
