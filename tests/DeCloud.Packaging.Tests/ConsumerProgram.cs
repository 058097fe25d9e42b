namespace DeCloud.Packaging.Tests;

/// <summary>The consumer's Program.cs: uses each package as a third party would.</summary>
internal static class ConsumerProgram
{
    // Later issues extend this with real use of each package's public API.
    public const string Source = """
        Console.WriteLine("consumer: DeCloud packages restored");
        """;
}
