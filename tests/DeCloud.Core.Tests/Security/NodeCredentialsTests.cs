using DeCloud.Core.Model;
using DeCloud.Core.Security;
using DeCloud.Core.Security.Siwe;
using DeCloud.Testing;

namespace DeCloud.Core.Tests.Security;

public sealed class NodeCredentialsTests : IDisposable
{
    private const string Orchestrator = "orchestrator-1";
    private const string MachineId = "4f1c0d6bd2b54c4bb3f1f1e2a9c0d001";

    private readonly SqliteTestDatabase _db = new();
    private readonly TokenWorld _world = new();
    private readonly TestWallet _operator = new();
    private readonly SiweSignIn _signIn;
    private readonly NodeCredentials _sut;
    private readonly TokenValidator _orchestratorValidator;

    public NodeCredentialsTests()
    {
        _world.Clock.SetUtcNow(SiweTestKit.Now);
        _signIn = new SiweSignIn(SiweTestKit.Options(), new SqliteSiweNonceStore(_db.Database), _world.Clock);
        _sut = new NodeCredentials(_signIn, _world.Issuer, Orchestrator);
        _orchestratorValidator = _world.CreateValidator(Orchestrator);
    }

    public void Dispose()
    {
        _world.Dispose();
        _db.Dispose();
    }

    [Fact]
    public async Task RegisterAsync_OperatorSignedRegistration_IssuesANodeToken()
    {
        var result = await RegisterAsync(NodeRole.Relay);

        Assert.Equal(NodeRegistrationStatus.Registered, result.Status);
        Assert.Equal(NodeId.FromMachine(MachineId, _operator.Address), result.Node);
        var claims = _orchestratorValidator.ValidateNodeToken(result.Token!.Token);
        Assert.True(claims.IsValid, claims.Reason);
        Assert.Equal(result.Node, claims.Claims!.Node);
        Assert.Equal(_operator.Address, claims.Claims.OperatorWallet);
        Assert.Equal(NodeRole.Relay, claims.Claims.Role);
        Assert.Equal(Orchestrator, claims.Claims.Audience);
    }

    [Fact]
    public async Task NodeToken_PresentedAsAConnectToken_IsRefused()
    {
        var nodeToken = (await RegisterAsync(NodeRole.Agent)).Token!.Token;

        Assert.Equal(TokenStatus.WrongTokenKind, _world.CreateValidator(Orchestrator).ValidateConnectToken(nodeToken).Status);
        Assert.NotEqual(TokenStatus.Valid, _world.Validator.Authorize(nodeToken, TokenWorld.Vm, TokenScopes.Ssh).Status);
    }

    [Fact]
    public void ConnectToken_PresentedAsANodeToken_IsRefused()
    {
        var connect = _world.Issue(audience: Orchestrator).Token;

        Assert.Equal(TokenStatus.WrongTokenKind, _orchestratorValidator.ValidateNodeToken(connect).Status);
    }

    [Fact]
    public async Task RegisterAsync_MessageForAnotherNodeOrRole_IsNotAuthorized()
    {
        var nonce = await _signIn.IssueNonceAsync().Within();
        var message = NodeCredentials.CreateRegistrationMessage(SiweTestKit.Options(), _operator.Address, "another-machine", NodeRole.Agent, nonce, SiweTestKit.Now).Build();

        var result = await _sut.RegisterAsync(new NodeRegistrationRequest(MachineId, NodeRole.Agent, message, _operator.Sign(message))).Within();

        Assert.Equal(NodeRegistrationStatus.NodeNotAuthorized, result.Status);
        Assert.Null(result.Token);
    }

    [Fact]
    public async Task RegisterAsync_AgentMessageClaimingRelayRole_IsNotAuthorized()
    {
        var nonce = await _signIn.IssueNonceAsync().Within();
        var message = NodeCredentials.CreateRegistrationMessage(SiweTestKit.Options(), _operator.Address, MachineId, NodeRole.Agent, nonce, SiweTestKit.Now).Build();

        var result = await _sut.RegisterAsync(new NodeRegistrationRequest(MachineId, NodeRole.Relay, message, _operator.Sign(message))).Within();

        Assert.Equal(NodeRegistrationStatus.NodeNotAuthorized, result.Status);
    }

    [Fact]
    public async Task RegisterAsync_ReplayedRegistration_IsRefused()
    {
        var nonce = await _signIn.IssueNonceAsync().Within();
        var message = NodeCredentials.CreateRegistrationMessage(SiweTestKit.Options(), _operator.Address, MachineId, NodeRole.Agent, nonce, SiweTestKit.Now).Build();
        var request = new NodeRegistrationRequest(MachineId, NodeRole.Agent, message, _operator.Sign(message));

        Assert.Equal(NodeRegistrationStatus.Registered, (await _sut.RegisterAsync(request).Within()).Status);
        var replay = await _sut.RegisterAsync(request).Within();

        Assert.Equal(NodeRegistrationStatus.SignInRefused, replay.Status);
        Assert.Equal(SiweStatus.NonceNotIssuedOrUsed, replay.SignInStatus);
    }

    [Fact]
    public async Task RevokeSubject_Node_RefusesItsNodeToken()
    {
        var result = await RegisterAsync(NodeRole.Agent);

        _world.HostRevocations.RevokeSubject(result.Node);

        Assert.Equal(TokenStatus.SubjectRevoked, _orchestratorValidator.ValidateNodeToken(result.Token!.Token).Status);
    }

    [Fact]
    public async Task RegisterAsync_EmptyMachineId_IsInvalidRequest()
    {
        var result = await _sut.RegisterAsync(new NodeRegistrationRequest(" ", NodeRole.Agent, "x", "y")).Within();

        Assert.Equal(NodeRegistrationStatus.InvalidRequest, result.Status);
    }

    private async Task<NodeRegistrationResult> RegisterAsync(NodeRole role)
    {
        var nonce = await _signIn.IssueNonceAsync().Within();
        var message = NodeCredentials.CreateRegistrationMessage(SiweTestKit.Options(), _operator.Address, MachineId, role, nonce, SiweTestKit.Now).Build();
        return await _sut.RegisterAsync(new NodeRegistrationRequest(MachineId, role, message, _operator.Sign(message))).Within();
    }
}
