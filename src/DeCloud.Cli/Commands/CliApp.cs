using System.CommandLine;
using DeCloud.Cli.Client;

namespace DeCloud.Cli.Commands;

/// <summary>The <c>decloud</c> command tree.</summary>
internal static class CliApp
{
    public static async Task<int> RunAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        var output = new CliOutput(stdout ?? Console.Out, stderr ?? Console.Error);
        var root = new RootCommand("decloud: run and use a DeCloud decentralized VM cloud.");
        root.Options.Add(output.Url);
        root.Options.Add(output.Json);
        root.Options.Add(output.SessionFile);
        root.Subcommands.Add(HostCommands.Orchestrator(output));
        root.Subcommands.Add(HostCommands.Agent(output));
        root.Subcommands.Add(HostCommands.Relay(output));
        root.Subcommands.Add(DemoCommand.Create(output));
        foreach (var c in UserCommands.Create(output))
        {
            root.Subcommands.Add(c);
        }

        BillingCommands.AddTo(root, output);

        try
        {
            return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
        }
        catch (CliException ex)
        {
            await output.Error.WriteLineAsync("decloud: " + ex.Message).ConfigureAwait(false);
            return ex.ExitCode;
        }
        catch (ApiException ex)
        {
            await output.Error.WriteLineAsync($"decloud: {ex.Title}: {ex.Detail}").ConfigureAwait(false);
            return ExitCodes.FromStatus(ex.Status);
        }
    }
}

/// <summary>Where commands print: results to <see cref="Out"/>, messages and progress to <see cref="Error"/>.</summary>
internal sealed class CliOutput(TextWriter output, TextWriter error)
{
    public TextWriter Out { get; } = output;

    public TextWriter Error { get; } = error;

    /// <summary>--url: the orchestrator (default: the session's, or DECLOUD_URL).</summary>
    public Option<string?> Url { get; } = new("--url") { Description = "Orchestrator URL (default: the signed-in session's, or DECLOUD_URL).", Recursive = true };

    /// <summary>--json: machine-readable output.</summary>
    public Option<bool> Json { get; } = new("--json") { Description = "Print JSON instead of tables.", Recursive = true };

    /// <summary>--session-file: where the sign-in session is kept.</summary>
    public Option<string?> SessionFile { get; } = new("--session-file") { Description = "Where the session is kept (default ~/.decloud/session.json).", Recursive = true };
}
