using DeCloud.Agent;
using DeCloud.Agent.Control;
using DeCloud.Agent.Security;
using DeCloud.Agent.Storage;
using DeCloud.Core.Model;
using DeCloud.Core.Security;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace DeCloud.Hosts.Tests.Unit;

/// <summary>An orchestrator key ring and the agent-side token checks of one node, wired without DI or HTTP.</summary>
internal sealed class AgentAuthTestKit : IDisposable
{
    public AgentAuthTestKit(string dataDirectory, NodeId node, TimeProvider clock, ILoggerFactory? loggerFactory = null)
    {
        Clock = clock;
        Ring = new TokenKeyRing(timeProvider: clock);
        Issuer = new TokenIssuer(Ring, timeProvider: clock);
        Source = new KeyRingSource(Ring);
        var keys = new TokenVerificationKeys();
        KeySet = new OrchestratorKeySet(keys, Source, Options.Create(new AgentOptions { DataDirectory = dataDirectory }),
            Options.Create(new AgentAuthorizationOptions { UnknownKeyRefetchInterval = TimeSpan.Zero }), clock, NullLogger<OrchestratorKeySet>.Instance);
        Authorizer = new ConnectAuthorizer(node, keys, KeySet, null, clock);
        var logs = loggerFactory ?? NullLoggerFactory.Instance;
        RelayAuthenticator = new RelayTokenAuthenticator(Authorizer, logs.CreateLogger<RelayTokenAuthenticator>());
        MoveGate = new MoveTokenGate(Authorizer, clock, logs.CreateLogger<MoveTokenGate>());
    }

    public TimeProvider Clock { get; }

    public TokenKeyRing Ring { get; }

    public TokenIssuer Issuer { get; }

    public KeyRingSource Source { get; }

    public OrchestratorKeySet KeySet { get; }

    public ConnectAuthorizer Authorizer { get; }

    public RelayTokenAuthenticator RelayAuthenticator { get; }

    public MoveTokenGate MoveGate { get; }

    /// <summary>An agent identity (wallet key, machine id) for tests.</summary>
    public static AgentIdentity Identity(string walletKeyHex, string machineId) =>
        new(Options.Create(new AgentOptions { WalletPrivateKey = walletKeyHex, MachineId = machineId }));

    public void Dispose()
    {
        KeySet.Dispose();
        Ring.Dispose();
    }

    /// <summary>The key ring's public set as the orchestrator's well-known document.</summary>
    internal sealed class KeyRingSource(TokenKeyRing ring) : IKeySetSource
    {
        public Task<string> FetchAsync(CancellationToken cancellationToken) => Task.FromResult(ring.GetPublicKeySet().ToJson());
    }
}
