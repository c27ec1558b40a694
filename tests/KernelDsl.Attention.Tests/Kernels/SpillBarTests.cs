using KernelDsl.Testing;

namespace KernelDsl.Attention.Tests.Kernels;

public class SpillBarTests
{
    private static PtxasKernelReport Report(string name, int stored, int loaded) => new(name, "sm_90a", 168, stored, stored, loaded, 0, 0);

    private const string Listed = "kdsl_KernelDsl_Attention_FlashAttention_PrefixLm_D128Wgmma";

    [Fact]
    public void A_kernel_not_listed_may_not_spill_under_any_nvrtc()
    {
        foreach (var major in new[] { 11, 12, 13 })
        {
            Assert.Null(SpillBar.Miss(Report("kdsl_Other", 0, 0), major));
            Assert.Contains("kdsl_Other spills on sm_90a: 168 registers, 4 B stored, 8 B loaded", SpillBar.Miss(Report("kdsl_Other", 4, 8), major));
            Assert.NotNull(SpillBar.Miss(Report("kdsl_Other", 0, 4), major));
        }
    }

    [Fact]
    public void Under_nvrtc_12_a_listed_kernel_may_not_spill_more_and_must_still_spill()
    {
        var bound = SpillBar.KnownNvrtc12Spills[Listed];
        Assert.Null(SpillBar.Miss(Report(Listed, bound, 400), 12));
        Assert.Null(SpillBar.Miss(Report(Listed, 4, 4), 12));
        Assert.Contains($"more than the {bound} B it stored when listed", SpillBar.Miss(Report(Listed, bound + 4, 4), 12));
        Assert.Contains("no longer spills", SpillBar.Miss(Report(Listed, 0, 0), 12));
    }

    [Fact]
    public void Under_other_nvrtc_versions_a_listed_kernel_is_not_held_to_its_bound()
    {
        Assert.Null(SpillBar.Miss(Report(Listed, 1000, 1000), 13));
        Assert.Null(SpillBar.Miss(Report(Listed, 0, 0), 13));
    }

    [Fact]
    public void Every_listed_kernel_is_declared()
    {
        // A renamed kernel would leave its entry behind and pass unchecked. The quick start's kernel is the samples' own.
        var declared = Generated.DeclaredKernels.All.SelectMany(m => m.EntryPoints).Select(e => e.Name).ToHashSet();
        Assert.All(SpillBar.KnownNvrtc12Spills.Keys.Where(k => !k.StartsWith("kdsl_QuickStart_", StringComparison.Ordinal)), k => Assert.Contains(k, declared));
    }
}
