using CsCheck;
using DeCloud.Core.Lifecycle;
using DeCloud.Core.Model;
using DeCloud.Core.Registry;

namespace DeCloud.Core.Tests.Registry;

public sealed class RegistryInputPropertyTests
{
    [Fact]
    public void Normalize_RandomTextFields_ValidOrValidationExceptionNeverAnythingElse()
    {
        Gen.Select(Gen.String, Gen.String, Gen.String, Gen.String).Sample((region, tag, endpoint, agent) =>
        {
            var registration = ControlPlaneData.Registration(1) with { Region = region, Tags = [tag], PublicEndpoint = endpoint, AgentVersion = agent };
            try
            {
                var normalized = registration.Normalize();
                Assert.Equal(normalized.Region, Labels.Region(normalized.Region));
            }
            catch (DeCloudValidationException ex)
            {
                Assert.Contains(ex.Field, new[] { "region", "tags", "publicEndpoint", "agentVersion" });
            }
        }, iter: 2000);
    }

    [Fact]
    public void Validate_RandomHeartbeatNumbers_ValidOrValidationExceptionNamingUsed()
    {
        Gen.Select(Gen.Int, Gen.Long, Gen.Long, Gen.Int).Sample((points, memory, storage, gpus) =>
        {
            var heartbeat = new NodeHeartbeat(ControlPlaneData.Node(1), new Resources(points, memory, storage, gpus));
            try
            {
                heartbeat.Validate();
                Assert.True(points >= 0 && memory >= 0 && storage >= 0 && gpus >= 0);
            }
            catch (DeCloudValidationException ex)
            {
                Assert.StartsWith("used.", ex.Field, StringComparison.Ordinal);
            }
        }, iter: 2000);
    }

    [Fact]
    public void DecodeVms_EncodedReports_RoundTrip()
    {
        var report = Gen.Select(Gen.Guid.Where(g => g != Guid.Empty), Gen.Int[0, 11]).Select((g, s) => new VmStatusReport(new VmId(g), (VmState)s));
        report.Array[0, 50].Sample(reports =>
            Assert.Equal(reports, SqliteNodeStore.DecodeVms(SqliteNodeStore.EncodeVms(reports))));
    }

    [Fact]
    public void DecodeVms_RandomOrTruncatedText_NeverThrowsAndKeepsOnlyWellFormedEntries()
    {
        var valid = SqliteNodeStore.EncodeVms([new VmStatusReport(VmId.New(), VmState.Running), new VmStatusReport(VmId.New(), VmState.Stopped)]);
        Gen.Int[0, valid.Length].Sample(cut => Assert.True(SqliteNodeStore.DecodeVms(valid[..cut]).Count <= 2));
        Gen.String.Sample(text => Assert.All(SqliteNodeStore.DecodeVms(text), r => Assert.True(VmTransitionTable.IsDefined(r.State))), iter: 2000);
        Assert.Empty(SqliteNodeStore.DecodeVms("not-a-guid:4,00000000000000000000000000000001:99"));
    }
}
