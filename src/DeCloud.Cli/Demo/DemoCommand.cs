using System.CommandLine;
using DeCloud.Cli.Client;

namespace DeCloud.Cli.Commands;

/// <summary><c>decloud demo</c>: a whole cloud on one machine, step by step.</summary>
internal static class DemoCommand
{
    public static Command Create(CliOutput output)
    {
        var keep = new Option<bool>("--keep-data") { Description = "Keep the temp folder with the SQLite files afterwards." };
        var hypervisor = new Option<string>("--hypervisor") { Description = "libvirt (test:///default) or simulated.", DefaultValueFactory = _ => Demo.DemoRunner.DefaultHypervisor };
        var cmd = new Command("demo", "Start an orchestrator, a relay, a public agent and a NAT'd agent on loopback; create VMs through the API; prove a port round trip; shut down.")
        {
            keep,
            hypervisor,
        };
        cmd.SetAction(async (p, ct) =>
        {
            var demo = new Demo.DemoRunner(output, p.GetValue(hypervisor)!, p.GetValue(keep));
            await using var demoScope = demo.ConfigureAwait(false);
            return await demo.RunAsync(ct).ConfigureAwait(false);
        });
        return cmd;
    }
}
