using CsCheck;

namespace DeCloud.Storage.Tests;

public sealed class VolumeNameTests
{
    [Theory]
    [InlineData("vm-1")]
    [InlineData("proj.data@backup.p.h.20260101T000000Z")]
    [InlineData("a+b_c")]
    public void Check_GoodName_Accepted(string name) => Assert.Null(VolumeName.Check(name));

    [Theory]
    [InlineData("..", "'.'")]
    [InlineData(".", "'.'")]
    [InlineData("a/b", "'/'")]
    [InlineData("a\0b", "NUL")]
    [InlineData("", "empty")]
    [InlineData(null, "empty")]
    [InlineData("tab\tname", "U+0009")]
    public void Check_BadName_SaysWhy(string? name, string expected)
    {
        var problem = VolumeName.Check(name);

        Assert.NotNull(problem);
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_AnyString_AcceptedOnlyIfSafeSingleComponent()
    {
        Gen.String.Sample(s =>
        {
            if (VolumeName.IsValid(s))
            {
                Assert.DoesNotContain('/', s);
                Assert.DoesNotContain('\0', s);
                Assert.False(s.StartsWith('.'));
                Assert.InRange(s.Length, 1, VolumeName.MaxLength);
                Assert.Equal(s, Path.GetFileName(Path.Combine("/root", s)));
            }
        }, iter: 5000);
    }
}
