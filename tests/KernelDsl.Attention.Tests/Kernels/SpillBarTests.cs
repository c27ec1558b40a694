using KernelDsl.Testing;

namespace KernelDsl.Attention.Tests.Kernels;

public class SpillBarTests
{
    private static PtxasKernelReport Report(string name, int stored, int loaded) => new(name, "sm_90a", 168, stored, stored, loaded, 0, 0);

    private const string Listed = "kdsl_KernelDsl_Attention_FlashAttention_PrefixLm_D128Wgmma";

    [Fact]
    public void A_kernel_not_listed_may_not_spill_under_any_nvrtc()
    {
        foreach (var nvrtc in new NvrtcVersion[] { new(11, 8), new(12, 4), new(12, 8), new(13, 0) })
        {
            Assert.Null(SpillBar.Miss(Report("kdsl_Other", 0, 0), nvrtc));
            Assert.Contains("kdsl_Other spills on sm_90a: 168 registers, 4 B stored, 8 B loaded", SpillBar.Miss(Report("kdsl_Other", 4, 8), nvrtc));
            Assert.NotNull(SpillBar.Miss(Report("kdsl_Other", 0, 4), nvrtc));
        }
    }

    [Fact]
    public void Under_the_listed_nvrtc_a_listed_kernel_may_not_spill_more_and_must_still_spill()
    {
        var (stored, loaded) = SpillBar.KnownSpills[Listed];
        Assert.Null(SpillBar.Miss(Report(Listed, stored, loaded), SpillBar.Listed));
        Assert.Null(SpillBar.Miss(Report(Listed, 4, 4), SpillBar.Listed));
        Assert.Contains($"more than the {stored} B stored and {loaded} B loaded when listed", SpillBar.Miss(Report(Listed, stored + 4, loaded), SpillBar.Listed));
        Assert.Contains($"more than the {stored} B stored and {loaded} B loaded when listed", SpillBar.Miss(Report(Listed, stored, loaded + 4), SpillBar.Listed));
        Assert.Contains("no longer spills", SpillBar.Miss(Report(Listed, 0, 0), SpillBar.Listed));
    }

    [Fact]
    public void Under_other_nvrtc_versions_a_listed_kernel_is_not_held_to_its_bound()
    {
        foreach (var nvrtc in new NvrtcVersion[] { new(12, 8), new(13, 0) })
        {
            Assert.Null(SpillBar.Miss(Report(Listed, 1000, 1000), nvrtc));
            Assert.Null(SpillBar.Miss(Report(Listed, 0, 0), nvrtc));
        }
    }

    [Fact]
    public void Every_listed_kernel_is_declared()
    {
        // A renamed kernel would leave its entry behind and pass unchecked. The quick start's kernel is the samples'
        // own, named from its declaration in samples/QuickStart/SlidingWindowSoftcap.cs.
        var declared = Generated.DeclaredKernels.All.SelectMany(m => m.EntryPoints).Select(e => e.Name).ToHashSet();
        const string QuickStart = "kdsl_QuickStart_SlidingWindowSoftcap_Wgmma";
        Assert.All(SpillBar.KnownSpills.Keys.Where(k => k != QuickStart), k => Assert.Contains(k, declared));
        Assert.Contains(QuickStart, SpillBar.KnownSpills.Keys);
        var sample = File.ReadAllText(Path.Combine(Root(), "samples", "QuickStart", "SlidingWindowSoftcap.cs"));
        Assert.Contains("public static partial class SlidingWindowSoftcap", sample);
        Assert.Contains("public static partial class Wgmma;", sample);
    }

    private static string Root()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "KernelDsl.sln")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("KernelDsl.sln not found above " + AppContext.BaseDirectory);
    }
}
