using CsCheck;
using DeCloud.Protocol;
using DeCloud.Protocol.V1;
using Google.Protobuf;

namespace DeCloud.Hosts.Tests.Unit;

public sealed class ProtocolTests
{
    [Fact]
    public void RegistrationText_SameFields_IdenticalAndSignatureIgnored()
    {
        var a = Sample();
        var b = Sample();
        b.Signature = "0xdifferent";
        Assert.Equal(RegistrationText.For(a), RegistrationText.For(b));
        Assert.StartsWith(RegistrationText.Header + "\n", RegistrationText.For(a), StringComparison.Ordinal);
    }

    [Fact]
    public void RegistrationText_AnyTrustedFieldChanged_TextChanges()
    {
        var baseline = RegistrationText.For(Sample());
        var changes = new Action<Register>[]
        {
            r => r.NodeId = "f" + r.NodeId[1..],
            r => r.MachineId = "other",
            r => r.IssuedAtUnixMs++,
            r => r.Nonce = "ffffffffffffffff",
            r => r.BehindNat = !r.BehindNat,
            r => r.Capacity.ComputePoints++,
            r => r.Capacity.MemoryMib++,
            r => r.RelayCapable = true,
            r => r.CpuCores++,
            r => r.CpuModel = "other cpu",
            r => r.BenchmarkScore += 0.5,
            r => r.PublicEndpoint = "198.51.100.9:22",
            r => r.Pricing = new RegisterPricing { ComputePointHour = "0.02", MemoryGibHour = "0", StorageGibHour = "0", GpuHour = "0" },
        };
        foreach (var change in changes)
        {
            var r = Sample();
            change(r);
            Assert.NotEqual(baseline, RegistrationText.For(r));
        }
    }

    [Fact]
    public void RegistrationText_NewlineInField_CannotForgeALine()
    {
        var r = Sample();
        r.MachineId = "m\nnat: false";
        Assert.DoesNotContain("\nnat: false\nnat:", RegistrationText.For(r), StringComparison.Ordinal);
        Assert.Equal(12, RegistrationText.For(r).Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public void AgentMessage_RandomOrTruncatedBytes_ParseOrFailCleanly()
    {
        var valid = new AgentMessage { Register = Sample() }.ToByteArray();
        for (var cut = 0; cut < valid.Length; cut++)
        {
            Assert.True(TryParse(valid.AsSpan(0, cut).ToArray()), $"truncated at {cut}");
        }

        Gen.Byte.Array[0, 512].Sample(bytes => TryParse(bytes));
    }

    [Fact]
    public void Command_RoundTrip_KeepsIdSequenceAndKind()
    {
        var c = new Command { CommandId = "abc", Sequence = 42, CreateVm = new CreateVm { VmId = "v", Resources = new Capacity { ComputePoints = 2 } } };
        var back = Command.Parser.ParseFrom(c.ToByteArray());
        Assert.Equal(c, back);
        Assert.Equal(Command.KindOneofCase.CreateVm, back.KindCase);
    }

    private static bool TryParse(byte[] bytes)
    {
        try
        {
            _ = AgentMessage.Parser.ParseFrom(bytes);
            return true;
        }
        catch (InvalidProtocolBufferException)
        {
            return true;
        }
    }

    private static Register Sample() => new()
    {
        NodeId = new string('a', 64),
        OperatorWallet = "0x52908400098527886E0F7030069857D2E4169EE7",
        MachineId = "machine",
        IssuedAtUnixMs = 1_700_000_000_000,
        Nonce = "0123456789abcdef",
        Capacity = new Capacity { ComputePoints = 8, MemoryMib = 1024, StorageGib = 10 },
    };
}
