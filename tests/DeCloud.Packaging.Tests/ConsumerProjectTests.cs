using System.IO.Compression;
using DeCloud.Testing;

namespace DeCloud.Packaging.Tests;

public sealed class ConsumerProjectTests
{
    private static readonly string[] Libraries =
        ["DeCloud.Core", "DeCloud.Relay", "DeCloud.Virtualization", "DeCloud.Storage", "DeCloud.Billing"];

    [Fact]
    public async Task Pack_EveryLibrary_ConsumerBuildsAgainstLocalPackages()
    {
        var repo = RepoPaths.Root;
        var work = Directory.CreateTempSubdirectory("decloud-pack-");
        try
        {
            // Pack from a copy of the sources, so the test never races the build of the tree it runs from.
            var copy = Path.Combine(work.FullName, "repo");
            CopySources(repo, copy);
            var version = $"0.0.0-consumer.{DateTimeOffset.UtcNow:yyyyMMddHHmmss}";
            var output = Path.Combine(work.FullName, "out");
            foreach (var lib in Libraries)
            {
                (await ProcessRunner.RunAsync("dotnet",
                    ["pack", Path.Combine(copy, "src", lib, lib + ".csproj"), "-c", "Release", "-o", output,
                     "-p:Version=" + version, "-p:ContinuousIntegrationBuild=true"],
                    TimeSpan.FromMinutes(10))).EnsureSuccess("dotnet pack " + lib);
            }

            foreach (var lib in Libraries)
            {
                var nupkg = Path.Combine(output, $"{lib}.{version}.nupkg");
                Assert.True(File.Exists(nupkg), $"missing {nupkg}");
                Assert.True(File.Exists(Path.Combine(output, $"{lib}.{version}.snupkg")), $"missing symbols for {lib}");
                using var zip = ZipFile.OpenRead(nupkg);
                var entries = zip.Entries.Select(e => e.FullName).ToHashSet(StringComparer.Ordinal);
                Assert.Contains("README.md", entries);
                Assert.Contains("icon.png", entries);
                Assert.Contains($"lib/net10.0/{lib}.dll", entries);
                Assert.Contains($"lib/net10.0/{lib}.xml", entries);
            }

            var consumer = Path.Combine(work.FullName, "consumer");
            Directory.CreateDirectory(consumer);
            await File.WriteAllTextAsync(Path.Combine(consumer, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="local" value="{output}" />
                  </packageSources>
                </configuration>
                """);
            var refs = string.Concat(Libraries.Select(l => $"""    <PackageReference Include="{l}" Version="{version}" />{"\n"}"""));
            await File.WriteAllTextAsync(Path.Combine(consumer, "Consumer.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                  </PropertyGroup>
                  <ItemGroup>
                {refs}  </ItemGroup>
                </Project>
                """);
            var probes = string.Join("\n", Libraries.Select(l =>
                $"Console.WriteLine(System.Reflection.Assembly.Load(\"{l}\").GetName().Name);"));
            await File.WriteAllTextAsync(Path.Combine(consumer, "Program.cs"), ConsumerProgram.Source + "\n" + probes + "\n");

            // The consumer lives outside the repository: none of our Directory.*.props apply.
            var build = await ProcessRunner.RunAsync("dotnet", ["build", consumer, "-c", "Release"], TimeSpan.FromMinutes(10),
                workingDirectory: consumer);
            build.EnsureSuccess("consumer build");
            var run = await ProcessRunner.RunAsync("dotnet", ["run", "--no-build", "-c", "Release", "--project", consumer],
                TimeSpan.FromMinutes(5), workingDirectory: consumer);
            run.EnsureSuccess("consumer run");
            foreach (var lib in Libraries)
            {
                Assert.Contains(lib, run.StandardOutput, StringComparison.Ordinal);
            }
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { }
        }
    }

    private static void CopySources(string repo, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in new[] { "global.json", "Directory.Build.props", "Directory.Packages.props", ".editorconfig" })
        {
            File.Copy(Path.Combine(repo, file), Path.Combine(destination, file));
        }

        foreach (var dir in new[] { "src", "nuget" })
        {
            CopyTree(Path.Combine(repo, dir), Path.Combine(destination, dir));
        }
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        foreach (var dir in Directory.EnumerateDirectories(from))
        {
            var name = Path.GetFileName(dir);
            if (name is "bin" or "obj" or "out")
            {
                continue;
            }

            CopyTree(dir, Path.Combine(to, name));
        }
    }
}
