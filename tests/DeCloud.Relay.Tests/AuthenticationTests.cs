
namespace DeCloud.Relay.Tests;

public sealed class AuthenticationTests
{
    private static readonly byte[] Secret = "0123456789abcdef0123456789abcdef"u8.ToArray();

    [Fact]
    public async Task Hmac_RightSecret_Succeeds()
    {
        var challenge = new byte[32];
        Random.Shared.NextBytes(challenge);
        var proof = await new HmacChallengeCredentials(Secret).CreateProofAsync("n1", challenge);
        var result = await new HmacChallengeAuthenticator(Secret).AuthenticateAsync(new RelayAuthenticationContext("n1", challenge, proof, null));
        Assert.True(result.Succeeded);
    }

    [Fact]
    public async Task Hmac_ProofForAnotherNodeOrChallenge_Fails()
    {
        var challenge = new byte[32];
        var proof = await new HmacChallengeCredentials(Secret).CreateProofAsync("n1", challenge);
        var sut = new HmacChallengeAuthenticator(Secret);
        Assert.False((await sut.AuthenticateAsync(new RelayAuthenticationContext("n2", challenge, proof, null))).Succeeded);
        Assert.False((await sut.AuthenticateAsync(new RelayAuthenticationContext("n1", new byte[] { 1 }, proof, null))).Succeeded);
    }

    [Fact]
    public async Task Hmac_PerNodeSecrets_UnknownNodeFailsWithReason()
    {
        var sut = new HmacChallengeAuthenticator(node => node == "known" ? Secret : null);
        var result = await sut.AuthenticateAsync(new RelayAuthenticationContext("stranger", new byte[32], new byte[32], null));
        Assert.False(result.Succeeded);
        Assert.Contains("stranger", result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Hmac_ShortSecret_ThrowsWithAdvice()
    {
        var ex = Assert.Throws<ArgumentException>(() => new HmacChallengeCredentials(new byte[4]));
        Assert.Contains("at least 16", ex.Message, StringComparison.Ordinal);
    }
}

public sealed class BackoffTests
{
    [Theory]
    [InlineData(0, 0.5, 500)]
    [InlineData(1, 0.5, 1000)]
    [InlineData(3, 0.5, 4000)]
    [InlineData(20, 0.5, 30000)]
    public void Backoff_MidJitter_DoublesUpToTheCap(int attempt, double random, double expectedMs) =>
        Assert.Equal(expectedMs, RelayClient.Backoff(attempt, TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(30), random).TotalMilliseconds, 3);

    [Fact]
    public void Backoff_Jitter_StaysWithinTwentyPercentAndTheCap()
    {
        for (var i = 0; i < 1000; i++)
        {
            var r = Random.Shared.NextDouble();
            var d = RelayClient.Backoff(2, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), r);
            Assert.InRange(d.TotalMilliseconds, 3200, 4800);
            Assert.True(RelayClient.Backoff(40, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), r) <= TimeSpan.FromSeconds(30));
        }
    }
}
