using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using DeCloud.Cli.Client;

namespace DeCloud.Cli.Commands;

/// <summary>User commands against an orchestrator: wallet, login, vm, nodes, ports.</summary>
internal static class UserCommands
{
    public static IEnumerable<Command> Create(CliOutput output)
    {
        yield return Wallet(output);
        yield return Login(output);
        yield return Vm(output);
        yield return Nodes(output);
        yield return Ports(output);
    }

    private static Command Wallet(CliOutput output)
    {
        var file = new Option<string>("--out") { Description = "Key file to write.", Required = true };
        var create = new Command("new", "Create a wallet key file (prints the address).") { file };
        create.SetAction(async (p, ct) =>
        {
            var path = p.GetValue(file)!;
            if (File.Exists(path))
            {
                throw new CliException(ExitCodes.Conflict, $"'{path}' exists; refusing to overwrite a wallet key.");
            }

            var key = WalletKey.Generate();
            key.Save(path);
            await Print(output, p, new { address = key.Address, keyFile = Path.GetFullPath(path) }, () => key.Address + "\n", ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return new Command("wallet", "Wallet key files.") { create };
    }

    private static Command Login(CliOutput output)
    {
        var keyFile = new Option<string>("--key-file") { Description = "Wallet key file to sign in with.", Required = true };
        var cmd = new Command("login", "Sign in with a wallet (Sign-In with Ethereum) and keep the session.") { keyFile };
        cmd.SetAction(async (p, ct) =>
        {
            var url = p.GetValue(output.Url) ?? Environment.GetEnvironmentVariable("DECLOUD_URL")
                ?? throw new CliException(ExitCodes.Usage, "--url is required for login (or set DECLOUD_URL).");
            var key = WalletKey.Load(p.GetValue(keyFile)!);
            var session = await SignInAsync(ParseUrl(url), key, ct).ConfigureAwait(false);
            session.Save(p.GetValue(output.SessionFile) ?? CliSession.DefaultPath);
            await Print(output, p, new { address = session.Address, url = session.Url, expiresAt = session.ExpiresAt },
                () => $"Signed in as {session.Address} at {session.Url}\n", ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>Sign-In with Ethereum: nonce, sign, verify.</summary>
    internal static async Task<CliSession> SignInAsync(Uri url, WalletKey key, CancellationToken ct)
    {
        using var client = new OrchestratorClient(url, null);
        var nonce = await client.BeginSignInAsync(key.Address, ct).ConfigureAwait(false);
        var session = await client.VerifyAsync(nonce.Message, key.Sign(nonce.Message), ct).ConfigureAwait(false);
        return new CliSession(url.ToString(), session.Token!, session.Address, session.ExpiresAt);
    }

    private static Command Vm(CliOutput output)
    {
        var name = new Option<string>("--name") { Description = "VM name.", DefaultValueFactory = _ => "vm" };
        var spec = new VmSpecOptions();
        var wait = new Option<bool>("--wait") { Description = "Wait until the VM is running (shows progress)." };
        var create = new Command("create", "Create a VM.") { name };
        spec.AddTo(create);
        create.Options.Add(wait);
        create.SetAction(async (p, ct) =>
        {
            using var client = Connect(output, p);
            var vm = await client.CreateVmAsync(spec.Body(p, p.GetValue(name)), ct).ConfigureAwait(false);
            if (p.GetValue(wait))
            {
                vm = await WaitForStateAsync(client, output, vm.Id, "Running", TimeSpan.FromMinutes(5), ct).ConfigureAwait(false);
            }

            await Print(output, p, vm, () => VmTable([vm]), ct).ConfigureAwait(false);
            return vm.State == "Failed" ? ExitCodes.Failure : ExitCodes.Ok;
        });

        var list = new Command("list", "List your VMs.");
        list.SetAction(async (p, ct) =>
        {
            using var client = Connect(output, p);
            var vms = await client.ListVmsAsync(ct).ConfigureAwait(false);
            await Print(output, p, vms, () => VmTable(vms), ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });

        var id = new Argument<string>("id") { Description = "VM id." };
        var show = new Command("show", "Show a VM.") { id };
        show.SetAction(async (p, ct) =>
        {
            using var client = Connect(output, p);
            var vm = await client.GetVmAsync(p.GetValue(id)!, ct).ConfigureAwait(false);
            await Print(output, p, vm, () => JsonSerializer.Serialize(vm, OrchestratorClient.Json) + "\n", ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });

        var cmd = new Command("vm", "Create, list, show, start, stop and delete VMs.") { create, list, show };
        foreach (var (verb, action) in new (string, Func<OrchestratorClient, string, CancellationToken, Task<VmInfo>>)[]
        {
            ("start", (c, v, ct) => c.StartVmAsync(v, ct)),
            ("stop", (c, v, ct) => c.StopVmAsync(v, ct)),
            ("delete", (c, v, ct) => c.DeleteVmAsync(v, ct)),
        })
        {
            var vmId = new Argument<string>("id") { Description = "VM id." };
            var sub = new Command(verb, $"{char.ToUpperInvariant(verb[0])}{verb[1..]} a VM.") { vmId };
            sub.SetAction(async (p, ct) =>
            {
                using var client = Connect(output, p);
                var vm = await action(client, p.GetValue(vmId)!, ct).ConfigureAwait(false);
                await Print(output, p, vm, () => $"{vm.Id} {vm.State}\n", ct).ConfigureAwait(false);
                return ExitCodes.Ok;
            });
            cmd.Subcommands.Add(sub);
        }

        cmd.Subcommands.Add(BillingCommands.Estimate(output, spec));
        return cmd;
    }

    private static Command Nodes(CliOutput output)
    {
        var region = new Option<string?>("--region") { Description = "Only this region." };
        var minCp = new Option<int?>("--min-compute-points") { Description = "At least this many compute points." };
        var online = new Option<bool?>("--online") { Description = "Only online (true) or offline (false) nodes." };
        var search = new Command("search", "Search nodes.") { region, minCp, online };
        search.SetAction(async (p, ct) =>
        {
            using var client = Connect(output, p, requireSession: false);
            var q = new List<string>();
            if (p.GetValue(region) is { } r)
            {
                q.Add("region=" + Uri.EscapeDataString(r));
            }

            if (p.GetValue(minCp) is { } m)
            {
                q.Add("minComputePoints=" + m.ToString(CultureInfo.InvariantCulture));
            }

            if (p.GetValue(online) is { } o)
            {
                q.Add("online=" + (o ? "true" : "false"));
            }

            var nodes = await client.SearchNodesAsync(q.Count == 0 ? string.Empty : "?" + string.Join('&', q), ct).ConfigureAwait(false);
            await Print(output, p, nodes, () => Table.Render(
                ["NODE", "REGION", "ONLINE", "NAT", "POINTS", "USED", "MEMORY MiB", "RELAY"],
                nodes.Select(n => (IReadOnlyList<string>)[Table.Short(n.Id), n.Region, n.Online ? "yes" : "no", n.BehindNat ? "yes" : "no",
                    Table.Invariant(n.ComputePoints), Table.Invariant(n.UsedComputePoints), Table.Invariant(n.MemoryMiB), n.RelayNodeId is null ? "-" : Table.Short(n.RelayNodeId)])), ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return new Command("nodes", "Nodes of the cloud.") { search };
    }

    private static Command Ports(CliOutput output)
    {
        var vmId = new Argument<string>("vm") { Description = "VM id." };
        var target = new Option<int>("--target-port") { Description = "Port inside the VM.", Required = true };
        var open = new Command("open", "Open a public TCP port to a port of the VM.") { vmId, target };
        open.SetAction(async (p, ct) =>
        {
            using var client = Connect(output, p);
            var port = await client.OpenPortAsync(p.GetValue(vmId)!, p.GetValue(target), ct).ConfigureAwait(false);
            await Print(output, p, port, () => $"public port {port.PublicPort} -> {port.TargetPort} ({port.State})\n", ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        var listVm = new Argument<string>("vm") { Description = "VM id." };
        var list = new Command("list", "List the public ports of a VM.") { listVm };
        list.SetAction(async (p, ct) =>
        {
            using var client = Connect(output, p);
            var ports = await client.ListPortsAsync(p.GetValue(listVm)!, ct).ConfigureAwait(false);
            await Print(output, p, ports, () => Table.Render(["PUBLIC", "TARGET", "PROTOCOL", "STATE"],
                ports.Select(x => (IReadOnlyList<string>)[Table.Invariant(x.PublicPort), Table.Invariant(x.TargetPort), x.Protocol, x.State])), ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return new Command("ports", "Public ports of VMs.") { open, list };
    }

    internal static async Task<VmInfo> WaitForStateAsync(OrchestratorClient client, CliOutput output, string id, string state, TimeSpan timeout, CancellationToken ct)
    {
        var started = TimeProvider.System.GetTimestamp();
        var frames = "|/-\\";
        var i = 0;
        while (true)
        {
            var vm = await client.GetVmAsync(id, ct).ConfigureAwait(false);
            if (vm.State == state || vm.State == "Failed")
            {
                await output.Error.WriteLineAsync($"\r{vm.Id} {vm.State}        ").ConfigureAwait(false);
                return vm;
            }

            var elapsed = TimeProvider.System.GetElapsedTime(started);
            if (elapsed > timeout)
            {
                throw new CliException(ExitCodes.Failure, $"VM {id} is still {vm.State} after {timeout}.");
            }

            await output.Error.WriteAsync($"\r{frames[i++ % frames.Length]} {vm.Id} {vm.State} ({elapsed.TotalSeconds:F0} s)").ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromMilliseconds(200), TimeProvider.System, ct).ConfigureAwait(false);
        }
    }

    internal static OrchestratorClient Connect(CliOutput output, ParseResult p, bool requireSession = true)
    {
        var session = CliSession.Load(p.GetValue(output.SessionFile) ?? CliSession.DefaultPath);
        var url = p.GetValue(output.Url) ?? Environment.GetEnvironmentVariable("DECLOUD_URL") ?? session?.Url;
        if (url is null)
        {
            throw new CliException(ExitCodes.Usage, "no orchestrator: pass --url, set DECLOUD_URL, or 'decloud login' first.");
        }

        var token = Environment.GetEnvironmentVariable("DECLOUD_TOKEN") ?? session?.Token;
        if (requireSession && token is null)
        {
            throw new CliException(ExitCodes.Unauthorized, "not signed in: run 'decloud login --url URL --key-file FILE'.");
        }

        return new OrchestratorClient(ParseUrl(url), token);
    }

    internal static Uri ParseUrl(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"
            ? u
            : throw new CliException(ExitCodes.Usage, $"'{url}' is not an http(s) URL.");

    private static string VmTable(IReadOnlyList<VmInfo> vms) => Table.Render(
        ["VM", "NAME", "STATE", "POWER", "NODE", "POINTS", "MEMORY MiB", "TIER"],
        vms.Select(v => (IReadOnlyList<string>)[v.Id, v.Name, v.State, v.PowerState, Table.Short(v.NodeId), Table.Invariant(v.ComputePoints), Table.Invariant(v.MemoryMiB), v.QualityTier]));

    internal static async Task Print(CliOutput output, ParseResult p, object value, Func<string> text, CancellationToken ct)
    {
        if (p.GetValue(output.Json))
        {
            await output.Out.WriteLineAsync(JsonSerializer.Serialize(value, OrchestratorClient.Json)).ConfigureAwait(false);
        }
        else
        {
            await output.Out.WriteAsync(text()).ConfigureAwait(false);
        }

        await output.Out.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>The options that describe a VM, shared by <c>vm create</c> and <c>vm estimate</c>, and the request body they make.</summary>
    internal sealed class VmSpecOptions
    {
        private readonly Option<int> _cp = new("--compute-points", "--cp") { Description = "Compute points.", DefaultValueFactory = _ => 1 };
        private readonly Option<long> _mem = new("--memory") { Description = "Memory in MiB.", DefaultValueFactory = _ => 512 };
        private readonly Option<long> _storage = new("--storage") { Description = "Storage in GiB.", DefaultValueFactory = _ => 10 };
        private readonly Option<string?> _quality = new("--quality") { Description = "Dedicated, Standard, Balanced or Burstable." };
        private readonly Option<string?> _bandwidth = new("--bandwidth") { Description = "Basic, Standard, Performance or Unmetered." };
        private readonly Option<string?> _node = new("--node") { Description = "Place on this node id instead of auto-placing." };

        public void AddTo(Command command)
        {
            foreach (Option o in new Option[] { _cp, _mem, _storage, _quality, _bandwidth, _node })
            {
                command.Options.Add(o);
            }
        }

        /// <summary>The JSON body of <c>POST /vms</c> and <c>POST /vms/estimate</c> (no <c>name</c> when <paramref name="name"/> is null).</summary>
        public VmSpecBody Body(ParseResult p, string? name = null) =>
            new(name, p.GetValue(_cp), p.GetValue(_mem), p.GetValue(_storage), p.GetValue(_quality), p.GetValue(_bandwidth), p.GetValue(_node));
    }

    /// <summary>A VM request as the API reads it.</summary>
    internal sealed record VmSpecBody(
        [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] string? Name,
        int ComputePoints,
        long MemoryMiB,
        long StorageGiB,
        string? QualityTier,
        string? BandwidthTier,
        string? NodeId);
}
