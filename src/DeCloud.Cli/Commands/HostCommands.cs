using System.CommandLine;
using DeCloud.Agent;
using DeCloud.Orchestrator;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DeCloud.Cli.Commands;

/// <summary><c>decloud orchestrator</c>, <c>decloud agent</c> and <c>decloud relay</c>: run a role from configuration.</summary>
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

    public static Command Relay(CliOutput output)
    {
        var control = new Option<string?>("--control") { Description = "address:port nodes dial (port 0 picks a free one). Default 0.0.0.0:7835." };
        var ports = new Option<string?>("--ports") { Description = "Public port range first-last. Default 40000-65535." };
        var data = new Option<string?>("--db") { Description = "SQLite file of mappings. Default decloud-relay/relay.db." };
        var secretFile = new Option<string?>("--secret-file") { Description = "File with the secret nodes share (HMAC challenge, at least 16 bytes)." };
        var nodeSecrets = new Option<string?>("--node-secrets-file") { Description = "File of 'node-id secret' lines (a secret per node)." };
        var publicHost = new Option<string?>("--public-host") { Description = "Host reported to nodes for their public ports." };
        var cmd = new Command("relay", "Run the relay role standalone: nodes behind NAT dial in and get public ports. Extra --Relay:Key=Value settings (or DECLOUD_Relay__Key) are passed to its configuration.")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        foreach (var o in new Option[] { control, ports, data, secretFile, nodeSecrets, publicHost })
        {
            cmd.Options.Add(o);
        }

        cmd.SetAction(async (parse, ct) =>
        {
            var args = new List<string>();
            void Add(Option<string?> option, string key)
            {
                if (parse.GetValue(option) is { } v)
                {
                    args.Add($"--Relay:{key}={v}");
                }
            }

            Add(control, "ControlEndpoint");
            Add(ports, "PortRange");
            Add(data, "DatabasePath");
            Add(secretFile, "SecretFile");
            Add(nodeSecrets, "NodeSecretsFile");
            Add(publicHost, "PublicHost");
            args.AddRange(parse.UnmatchedTokens);
            IHost host;
            try
            {
                host = Cli.Relay.RelayRole.Create([.. args]);
            }
            catch (ArgumentException ex)
            {
                throw new CliException(ExitCodes.Usage, "relay configuration: " + ex.Message);
            }

            using (host)
            {
                try
                {
                    await host.StartAsync(ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is Microsoft.Extensions.Options.OptionsValidationException or System.Net.Sockets.SocketException)
                {
                    throw new CliException(ExitCodes.Usage, "relay: " + ex.Message);
                }

                var server = host.Services.GetRequiredService<DeCloud.Relay.RelayServer>();
                await output.Out.WriteLineAsync("decloud relay control " + server.ControlEndPoint).ConfigureAwait(false);
                await output.Out.FlushAsync(ct).ConfigureAwait(false);
                await host.WaitForShutdownAsync(ct).ConfigureAwait(false);
            }

            return ExitCodes.Ok;
        });
        return cmd;
    }
}
