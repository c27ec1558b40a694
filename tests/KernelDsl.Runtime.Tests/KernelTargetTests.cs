using KernelDsl.Launching;

namespace KernelDsl.Runtime.Tests;

public class KernelTargetTests
{
    private static KernelModuleDefinition Module(int minimumSm, bool archSpecific = false, params string[] targets) => new()
    {
        Name = "Tests.Variant",
        CudaSource = "extern \"C\" __global__ void k() {}",
        EntryPoints = [new KernelEntryPoint("k", 128, 0)],
        Targets = [.. targets],
        MinimumSm = minimumSm,
        RequiresArchSpecific = archSpecific,
    };

    [Theory]
    [InlineData(80, "sm_80")]
    [InlineData(89, "sm_89")]
    [InlineData(90, "sm_90")]
    public void A_portable_module_is_compiled_for_the_device_own_arch(int computeCapability, string arch)
    {
        Assert.Equal(arch, KernelTarget.Select(Module(80, false, "sm_80", "sm_90"), computeCapability, "GPU"));
    }

    [Fact]
    public void A_device_below_the_minimum_sm_gets_a_clear_refusal()
    {
        var error = Assert.Throws<NotSupportedException>(() => KernelTarget.Select(Module(80, false, "sm_80"), 75, "Tesla T4"));

        Assert.Contains("Tests.Variant", error.Message);
        Assert.Contains("8.0 (sm_80)", error.Message);
        Assert.Contains("Tesla T4 is 7.5 (sm_75)", error.Message);
    }

    [Fact]
    public void An_arch_specific_module_needs_its_exact_declared_target()
    {
        var module = Module(90, true, "sm_90a");

        Assert.Equal("sm_90a", KernelTarget.Select(module, 90, "H100"));
        var error = Assert.Throws<NotSupportedException>(() => KernelTarget.Select(module, 100, "B200"));
        Assert.Contains("runs only on sm_90a", error.Message);
        Assert.Contains("B200 is sm_100", error.Message);
    }

    [Theory]
    [InlineData(80, false)]
    [InlineData(89, false)]
    [InlineData(90, true)]
    [InlineData(100, false)]
    public void RunsOn_is_the_rule_Select_applies(int computeCapability, bool runs)
    {
        var archSpecific = Module(90, true, "sm_90a");
        Assert.Equal(runs, archSpecific.RunsOn(computeCapability));
        Assert.Equal(computeCapability >= 80, Module(80, false, "sm_80").RunsOn(computeCapability));
    }
}
