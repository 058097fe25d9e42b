using System.Net.Http.Json;
using System.Security.Cryptography;
using DeCloud.Core.Model;
using DeCloud.Orchestrator;
using DeCloud.Protocol;
using DeCloud.Protocol.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Nethereum.Signer;

namespace DeCloud.Benchmarks.Orchestrator;

/// <summary>
/// An in-process orchestrator (SQLite in a temp folder, loopback ports) with simulated agents connected over gRPC
/// and one signed-in user, shared by <c>quick orchestrator</c> and <see cref="OrchestratorBenchmarks"/>.
/// </summary>
internal sealed class OrchestratorBenchHost : IAsyncDisposable
{
    private readonly string _dir;
    private readonly CancellationTokenSource _stop = new();
    private readonly GrpcChannel _channel;

    private OrchestratorBenchHost(string dir, WebApplication app, GrpcChannel channel, List<SimulatedAgent> agents, HttpClient http, EthECKey user)
    {
        _dir = dir;
        App = app;
        _channel = channel;
        Agents = agents;
        Http = http;
        User = WalletAddress.Parse(user.GetPublicAddress());
    }

    public WebApplication App { get; }

    public IReadOnlyList<SimulatedAgent> Agents { get; }

    /// <summary>An HTTP client on the API, signed in as <see cref="User"/>.</summary>
    public HttpClient Http { get; }

    public WalletAddress User { get; }

    /// <summary>Starts the orchestrator, registers <paramref name="agents"/> agents of <paramref name="pointsPerAgent"/> points, signs in a user.</summary>
    public static async Task<OrchestratorBenchHost> StartAsync(int agents, int pointsPerAgent, CancellationToken ct = default)
    {
        var dir = Directory.CreateTempSubdirectory("dch-bench-").FullName;
        var app = OrchestratorApplication.Create(
        [
            "--Orchestrator:ApiUrl=http://127.0.0.1:0", "--Orchestrator:AgentUrl=http://127.0.0.1:0",
            "--Orchestrator:DataDirectory=" + dir, "--Orchestrator:HeartbeatInterval=00:00:05", "--Orchestrator:OfflineAfter=00:05:00",
            "--Logging:LogLevel:Default=Error",
        ]);
        await app.StartAsync(ct);
        var addresses = OrchestratorApplication.Addresses(app);

        // Every agent is one gRPC stream, multiplexed over a few HTTP/2 connections.
        var channel = GrpcChannel.ForAddress(addresses.Agents, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true },
        });
        var client = new AgentControl.AgentControlClient(channel);
        var list = new List<SimulatedAgent>(agents);
        var host = (OrchestratorBenchHost?)null;
        var http = new HttpClient { BaseAddress = addresses.Api };
        var user = EthECKey.GenerateKey();
        host = new OrchestratorBenchHost(dir, app, channel, list, http, user);
        for (var i = 0; i < agents; i++)
        {
            list.Add(new SimulatedAgent(client, i, pointsPerAgent, host._stop.Token));
        }

        await Task.WhenAll(list.Select(a => a.Registered));

        var nonce = await (await http.PostAsJsonAsync("api/v1/auth/nonce", new { address = user.GetPublicAddress() }, ct)).Content.ReadFromJsonAsync<NonceDto>(ct);
        var session = await (await http.PostAsJsonAsync("api/v1/auth/verify", new { message = nonce!.Message, signature = new EthereumMessageSigner().EncodeUTF8AndSign(nonce.Message, user) }, ct)).Content.ReadFromJsonAsync<SessionDto>(ct);
        http.DefaultRequestHeaders.Authorization = new("Bearer", session!.Token);
        return host;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var a in Agents)
        {
            a.Dispose();
        }

        Http.Dispose();
        _channel.Dispose();
        await App.StopAsync(CancellationToken.None);
        await App.DisposeAsync();
        _stop.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // SQLite may still hold the file for a moment; the temp folder is cleaned by the OS.
        }
    }

    private sealed record NonceDto(string Nonce, string Message);

    private sealed record SessionDto(string Token);
}

/// <summary>A gRPC agent that registers and acknowledges every command at once (no VMs).</summary>
internal sealed class SimulatedAgent : IDisposable
{
    private readonly AsyncDuplexStreamingCall<AgentMessage, OrchestratorMessage> _call;
    private readonly SemaphoreSlim _write = new(1, 1);
    private readonly TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ulong _seq;

    public SimulatedAgent(AgentControl.AgentControlClient client, int index, int points, CancellationToken ct)
    {
        var key = EthECKey.GenerateKey();
        var wallet = WalletAddress.Parse(key.GetPublicAddress());
        var machine = "dch-sim-" + index;
        NodeId = NodeId.FromMachine(machine, wallet);
        _call = client.Connect(cancellationToken: ct);
        _ = RunAsync(key, wallet, machine, points, ct);
    }

    public NodeId NodeId { get; }

    public Task Registered => _registered.Task;

    public async Task HeartbeatFloodAsync(CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await SendAsync(new AgentMessage { Heartbeat = new Heartbeat { Sequence = ++_seq, Used = new Capacity() } }, ct);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or RpcException)
        {
            // The window ended in the middle of a write.
        }
    }

    public void Dispose()
    {
        _call.Dispose();
        _write.Dispose();
    }

    private async Task RunAsync(EthECKey key, WalletAddress wallet, string machine, int points, CancellationToken ct)
    {
        try
        {
            var r = new Register
            {
                NodeId = NodeId.Value,
                OperatorWallet = wallet.ToString(),
                MachineId = machine,
                IssuedAtUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
                Nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)),
                Capacity = new Capacity { ComputePoints = points, MemoryMib = 1024L * 1024, StorageGib = 65536 },
                CpuCores = 64,
                CpuModel = "simulated bench CPU",
                BenchmarkScore = points * ComputePointNormalizer.Default.BaselineScorePerPoint,
                PublicEndpoint = "127.0.0.1:22",
            };
            r.Signature = new EthereumMessageSigner().EncodeUTF8AndSign(RegistrationText.For(r), key);
            await SendAsync(new AgentMessage { Register = r }, ct);
            while (await _call.ResponseStream.MoveNext(ct))
            {
                var m = _call.ResponseStream.Current;
                if (m.BodyCase == OrchestratorMessage.BodyOneofCase.Registered)
                {
                    _registered.TrySetResult();
                }
                else if (m.BodyCase == OrchestratorMessage.BodyOneofCase.Command)
                {
                    await SendAsync(new AgentMessage { Ack = new CommandAck { CommandId = m.Command.CommandId, Sequence = m.Command.Sequence, Status = AckStatus.Succeeded } }, ct);
                }
            }
        }
        catch (Exception ex) when (ex is RpcException or OperationCanceledException or ObjectDisposedException)
        {
            _registered.TrySetException(ex);
        }
    }

    private async Task SendAsync(AgentMessage m, CancellationToken ct)
    {
        await _write.WaitAsync(ct);
        try
        {
            await _call.RequestStream.WriteAsync(m, ct);
        }
        finally
        {
            _write.Release();
        }
    }
}
