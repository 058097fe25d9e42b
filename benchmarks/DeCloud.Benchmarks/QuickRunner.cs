using System.Globalization;
using System.Reflection;
using System.Text;

namespace DeCloud.Benchmarks;

/// <summary>
/// One short measurement of an area together with its baseline, printed as
/// <c>RESULT &lt;area&gt; key=value ...</c> lines. Each area is a class implementing this interface,
/// found by reflection, so adding an area touches only its own file.
/// </summary>
public interface IQuickArea
{
    /// <summary>The area's name on the command line, e.g. <c>heartbeats</c>.</summary>
    string Name { get; }

    /// <summary>Runs the measurement (under 60 s) and reports one line per configuration.</summary>
    Task RunAsync(QuickReport report, CancellationToken cancellationToken);
}

/// <summary>Prints RESULT lines: configuration keys first, snake_case keys, invariant numbers.</summary>
public sealed class QuickReport(string area, TextWriter output)
{
    /// <summary>Prints one RESULT line.</summary>
    public void Result(params (string Key, object Value)[] pairs)
    {
        var sb = new StringBuilder("RESULT ").Append(area);
        foreach (var (key, value) in pairs)
        {
            sb.Append(' ').Append(key).Append('=').Append(Format(value));
        }

        output.WriteLine(sb.ToString());
        output.Flush();
    }

    /// <summary>Prints a comment line that is not a result (progress, notes).</summary>
    public void Note(string text) => output.WriteLine("# " + text);

    private static string Format(object value) => value switch
    {
        double d => d >= 100 ? d.ToString("F0", CultureInfo.InvariantCulture) : d.ToString("G4", CultureInfo.InvariantCulture),
        float f => ((double)f).ToString("G4", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString()?.Replace(' ', '_') ?? "null",
    };
}

internal static class QuickRunner
{
    public static async Task<int> RunAsync(string[] args)
    {
        var areas = typeof(QuickRunner).Assembly.GetTypes()
            .Where(t => typeof(IQuickArea).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .Select(t => (IQuickArea)Activator.CreateInstance(t)!)
            .OrderBy(a => a.Name, StringComparer.Ordinal)
            .ToList();

        if (args.Length == 0 || areas.All(a => a.Name != args[0]))
        {
            Console.Error.WriteLine($"usage: quick <area>; areas: {string.Join(", ", areas.Select(a => a.Name))}");
            return 2;
        }

        var area = areas.Single(a => a.Name == args[0]);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await area.RunAsync(new QuickReport(area.Name, Console.Out), cts.Token);
        return 0;
    }
}
