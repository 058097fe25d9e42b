using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace DeCloud.Testing;

/// <summary>
/// A real local EVM chain: `hardhat node` (pinned in hardhat/package-lock.json, installed by
/// eng/install-deps) on 127.0.0.1 with a free port, plus the 6-decimal test token compiled with solc-js.
/// Skips on a machine without node/hardhat, fails under CI=true. Shared by the Billing tests and the
/// orchestrator's deposit tests; each test project declares its own collection over it.
/// </summary>
public sealed class HardhatChain : IAsyncLifetime
{
    /// <summary>Hardhat's well-known first development account (holds 10,000 ETH on the local chain only).</summary>
    public const string Account0Key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private Process? _node;
    private string? _log;
    private int _id;

    public Uri RpcUrl { get; private set; } = null!;

    public string[] Accounts { get; private set; } = [];

    public string TokenBytecode { get; private set; } = "";

    /// <summary>The npm fixture folder (hardhat and solc-js pinned in its package-lock.json).</summary>
    public static string ChainDirectory => Path.Combine(RepoPaths.Root, "tests", "DeCloud.Billing.Tests", "hardhat");

    public bool Available { get; private set; }

    public string? Missing { get; private set; }

    public async ValueTask InitializeAsync()
    {
        var dir = ChainDirectory;
        var hardhat = Path.Combine(dir, "node_modules", "hardhat", "internal", "cli", "bootstrap.js");
        var node = RealDependency.FindExecutable("node");
        if (node is null || !File.Exists(hardhat))
        {
            Missing = node is null ? "executable 'node'" : "hardhat in tests/DeCloud.Billing.Tests/hardhat/node_modules (run eng/install-deps)";
            return;
        }

        (await ProcessRunner.RunAsync(node, ["compile-token.js"], TimeSpan.FromMinutes(3), dir)).EnsureSuccess("node compile-token.js");
        using (var doc = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(dir, "build", "TestUsdc.json"))))
        {
            TokenBytecode = doc.RootElement.GetProperty("bytecode").GetString()!;
        }

        var port = FreePort();
        RpcUrl = new Uri($"http://127.0.0.1:{port}/");
        var psi = new ProcessStartInfo(node)
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { hardhat, "node", "--hostname", "127.0.0.1", "--port", port.ToString(CultureInfo.InvariantCulture) })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["HARDHAT_DISABLE_TELEMETRY_PROMPT"] = "true";
        psi.Environment["DO_NOT_TRACK"] = "1";
        var output = new System.Text.StringBuilder();
        _node = Process.Start(psi)!;
        _node.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        _node.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        _node.BeginOutputReadLine();
        _node.BeginErrorReadLine();

        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (_node.HasExited)
            {
                lock (output) { _log = output.ToString(); }
                throw new InvalidOperationException($"hardhat node exited with {_node.ExitCode}: {_log}");
            }

            try
            {
                var id = await RpcAsync("eth_chainId");
                if (id.GetValue<string>() == "0x7a69")
                {
                    break;
                }
            }
            catch (HttpRequestException) when (deadline.Elapsed < TimeSpan.FromMinutes(2))
            {
            }
            catch (TaskCanceledException) when (deadline.Elapsed < TimeSpan.FromMinutes(2))
            {
            }

            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }

        Accounts = (await RpcAsync("eth_accounts")).AsArray().Select(a => a!.GetValue<string>()).ToArray();
        Available = true;
    }

    public async ValueTask DisposeAsync()
    {
        if (_node is { HasExited: false })
        {
            _node.Kill(entireProcessTree: true);
            await _node.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }

        _node?.Dispose();
        _http.Dispose();
    }

    /// <summary>Skips (dev box) or fails (CI) when hardhat could not start.</summary>
    public void Require() => RealDependency.Require(Available, Missing ?? "hardhat node");

    public async Task<JsonNode> RpcAsync(string method, params object?[] args)
    {
        var request = new JsonObject
        {
            ["jsonrpc"] = "2.0",
            ["id"] = Interlocked.Increment(ref _id),
            ["method"] = method,
            ["params"] = JsonSerializer.SerializeToNode(args),
        };
        using var response = await _http.PostAsJsonAsync(RpcUrl, request);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        if (body["error"] is { } error)
        {
            throw new InvalidOperationException($"{method} failed: {error.ToJsonString()}");
        }

        return body["result"]!;
    }

    /// <summary>Deploys a fresh 6-decimal token with <paramref name="supply"/> base units owned by account 0; returns its address.</summary>
    public async Task<string> DeployTokenAsync(long supply = 1_000_000_000_000)
    {
        var hash = await SendAsync(Accounts[0], null, TokenBytecode + Word(supply));
        var receipt = await ReceiptAsync(hash);
        return receipt["contractAddress"]!.GetValue<string>();
    }

    /// <summary>Sends token.transfer(to, amount) from an unlocked account; returns the tx hash (mined at once).</summary>
    public Task<string> TransferAsync(string token, string from, string to, long amount) =>
        SendAsync(from, token, "0xa9059cbb" + Word(to) + Word(amount), gas: 100_000);

    public async Task<long> BalanceOfAsync(string token, string owner)
    {
        var result = await RpcAsync("eth_call", new { to = token, data = "0x70a08231" + Word(owner) }, "latest");
        return long.Parse(result.GetValue<string>()[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    public async Task<JsonNode> ReceiptAsync(string hash) => await RpcAsync("eth_getTransactionReceipt", hash);

    public async Task MineAsync(int blocks) => await RpcAsync("hardhat_mine", "0x" + blocks.ToString("x", CultureInfo.InvariantCulture));

    public async Task<string> SnapshotAsync() => (await RpcAsync("evm_snapshot")).GetValue<string>();

    public async Task RevertAsync(string snapshot)
    {
        if (!(await RpcAsync("evm_revert", snapshot)).GetValue<bool>())
        {
            throw new InvalidOperationException("evm_revert refused snapshot " + snapshot);
        }
    }

    public static string NewAddress() => "0x" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(20));

    private async Task<string> SendAsync(string from, string? to, string data, long gas = 3_000_000)
    {
        var tx = new JsonObject { ["from"] = from, ["data"] = data, ["gas"] = "0x" + gas.ToString("x", CultureInfo.InvariantCulture) };
        if (to is not null)
        {
            tx["to"] = to;
        }

        return (await RpcAsync("eth_sendTransaction", tx)).GetValue<string>();
    }

    private static string Word(long value) => value.ToString("x", CultureInfo.InvariantCulture).PadLeft(64, '0');

    private static string Word(string address) => address[2..].ToLowerInvariant().PadLeft(64, '0');

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
