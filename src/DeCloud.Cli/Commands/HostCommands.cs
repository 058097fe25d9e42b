using System.CommandLine;
using DeCloud.Agent;
using DeCloud.Orchestrator;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;

namespace DeCloud.Cli.Commands;

/// <summary><c>decloud orchestrator</c> and <c>decloud agent</c>: run a role from configuration.</summary>
internal static class HostCommands
{
    public static Command Orchestrator(CliOutput output)
    {
        var api = new Option<string>("--api-url") { Description = "Where the HTTP API listens; port 0 picks a free one.", DefaultValueFactory = _ => "http://127.0.0.1:5080" };
        var agents = new Option<string>("--agent-url") { Description = "Where agents' gRPC streams connect (HTTP/2); port 0 picks a free one.", DefaultValueFactory = _ => "http://127.0.0.1:5081" };
        var data = new Option<string>("--data") { Description = "Folder of the SQLite database.", DefaultValueFactory = _ => "decloud-orchestrator" };
        var cmd = new Command("orchestrator", "Run the orchestrator. Extra --Orchestrator:Key=Value settings are passed to its configuration.")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        cmd.Options.Add(api);
        cmd.Options.Add(agents);
        cmd.Options.Add(data);
        cmd.SetAction(async (parse, ct) =>
        {
            string[] args = ["--Orchestrator:ApiUrl=" + parse.GetValue(api), "--Orchestrator:AgentUrl=" + parse.GetValue(agents), "--Orchestrator:DataDirectory=" + parse.GetValue(data), .. parse.UnmatchedTokens];
            var app = OrchestratorApplication.Create(args);
            await using var appScope = app.ConfigureAwait(false);
            await app.StartAsync(ct).ConfigureAwait(false);
            var addresses = OrchestratorApplication.Addresses(app);
            await output.Out.WriteLineAsync("decloud orchestrator api " + addresses.Api).ConfigureAwait(false);
            await output.Out.WriteLineAsync("decloud orchestrator agents " + addresses.Agents).ConfigureAwait(false);

            await output.Out.FlushAsync(ct).ConfigureAwait(false);
            await app.WaitForShutdownAsync(ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    public static Command Agent(CliOutput output)
    {
        var orchestrator = new Option<string>("--orchestrator") { Description = "The orchestrator URL, e.g. http://127.0.0.1:5080.", Required = true };
        var keyFile = new Option<string>("--key-file") { Description = "File with the operator wallet's private key ('decloud wallet new').", Required = true };
        var data = new Option<string>("--data") { Description = "Folder of the agent's SQLite state.", DefaultValueFactory = _ => "decloud-agent" };
        var hypervisor = new Option<string>("--hypervisor") { Description = "libvirt or simulated.", DefaultValueFactory = _ => "libvirt" };
        var libvirtUri = new Option<string>("--libvirt-uri") { Description = "libvirt connection URI.", DefaultValueFactory = _ => "test:///default" };
        var behindNat = new Option<bool>("--behind-nat") { Description = "The node accepts no inbound connections; public ports go through a relay." };
        var region = new Option<string>("--region") { Description = "Region label.", DefaultValueFactory = _ => "default" };
        var machineId = new Option<string?>("--machine-id") { Description = "Machine id (default /etc/machine-id)." };
        var points = new Option<int>("--compute-points") { Description = "Advertise this many compute points instead of measuring." };
        var cmd = new Command("agent", "Run a node agent. Extra --Agent:Key=Value settings are passed to its configuration.")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        foreach (var o in new Option[] { orchestrator, keyFile, data, hypervisor, libvirtUri, behindNat, region, machineId, points })
        {
            cmd.Options.Add(o);
        }

        cmd.SetAction(async (parse, ct) =>
        {
            var args = new List<string>
            {
                "--Agent:OrchestratorUrl=" + parse.GetValue(orchestrator),
                "--Agent:WalletKeyFile=" + parse.GetValue(keyFile),
                "--Agent:DataDirectory=" + parse.GetValue(data),
                "--Agent:Hypervisor=" + parse.GetValue(hypervisor),
                "--Agent:LibvirtUri=" + parse.GetValue(libvirtUri),
                "--Agent:BehindNat=" + parse.GetValue(behindNat),
                "--Agent:Region=" + parse.GetValue(region),
                "--Agent:ComputePoints=" + parse.GetValue(points),
            };
            if (parse.GetValue(machineId) is { } m)
            {
                args.Add("--Agent:MachineId=" + m);
            }

            args.AddRange(parse.UnmatchedTokens);
            using var host = AgentApplication.Create([.. args]);
            try
            {
                await host.RunAsync(ct).ConfigureAwait(false);
            }
            catch (Microsoft.Extensions.Options.OptionsValidationException ex)
            {
                throw new CliException(ExitCodes.Usage, "agent configuration: " + string.Join(" ", ex.Failures));
            }

            return ExitCodes.Ok;
        });
        return cmd;
    }
}
