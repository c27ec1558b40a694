namespace KernelDsl.Runtime.Tests;

public class NvrtcRequestTests
{
    [Fact]
    public void Options_are_the_real_arch_and_cxx17_then_the_switches_then_the_extras()
    {
        var request = new NvrtcRequest("src", "V", "sm_90a", ["-DX=1"], LineInfo: true, PtxasVerbose: true);

        Assert.Equal(new[] { "-arch=sm_90a", "--std=c++17", "-lineinfo", "--ptxas-options=-v", "-DX=1" }, request.EffectiveOptions());
        Assert.Equal("V.cu", request.ProgramName);
    }

    [Theory]
    [InlineData("compute_90")]
    [InlineData("sm90")]
    [InlineData("sm_9")]
    [InlineData("")]
    public void A_virtual_or_malformed_arch_is_rejected(string arch)
    {
        var error = Assert.Throws<ArgumentException>(() => new NvrtcRequest("src", "V", arch, []).EffectiveOptions());

        Assert.Equal("Arch", error.ParamName);
    }
}
