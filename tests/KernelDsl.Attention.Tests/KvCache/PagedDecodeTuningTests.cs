using KernelDsl;
using KernelDsl.Attention.KvCache;

namespace AttentionTests.KvCache;

/// <summary>What PagedKvCache.Autotune chooses among and how it keys a decision (the timing itself needs a GPU: PagedDecodeGpuTests).</summary>
public class PagedDecodeTuningTests
{
    [Fact]
    public void The_default_configuration_comes_first_and_competes_with_the_others_of_its_head_dim_and_element()
    {
        var d128 = PagedKvCache.Configurations<Half>(128, Element.F16).Select(k => k.Name[(k.Name.LastIndexOf('.') + 1)..]).ToArray();
        Assert.Equal(["PagedDecodeD128", "PagedDecodeD128Warps2", "PagedDecodeD128Warps8", "PagedDecodeD128Stages3", "PagedDecodeD128Warps2Stages3"], d128);
        // Three full-page stages of four warps fit only sm_90's shared memory (227 KB a block): an A100 (163 KB) does not time
        // them; an sm_86/89 card (99 KB) runs only the two-warp configuration of two stages.
        string[] On(int computeCapability, int sharedMemoryPerBlock) => PagedKvCache.Configurations<Half>(128, Element.F16)
            .Where(k => k.RunsOn(computeCapability, sharedMemoryPerBlock)).Select(k => k.Name[(k.Name.LastIndexOf('.') + 1)..]).ToArray();
        Assert.Equal(d128, On(90, 232448));
        Assert.Equal(["PagedDecodeD128", "PagedDecodeD128Warps2", "PagedDecodeD128Warps8", "PagedDecodeD128Warps2Stages3"], On(80, 166912));
        Assert.Equal(["PagedDecodeD128Warps2"], On(89, 101376));
        // One declared configuration each: nothing to tune, the plain call runs it.
        Assert.Single(PagedKvCache.Configurations<Half>(64, Element.F16));
        Assert.Single(PagedKvCache.Configurations<ushort>(128, Element.BF16));
        // The element type must match the cache's: f16 kernels are not bf16 ones.
        Assert.Empty(PagedKvCache.Configurations<ushort>(128, Element.F16));
    }

    [Fact]
    public void A_key_rounds_the_batch_the_longest_length_and_the_queries_up_to_powers_of_two()
    {
        var key = PagedKvCache.TuningKey("sm_90", "NVIDIA H100 80GB HBM3", Element.F16, 128, 64, 8, batch: 13, longest: 4000, mostQueries: 3, splits: null);
        Assert.Equal("decode|sm_90|NVIDIA H100 80GB HBM3|F16|D128|Hq=64|Hkv=8|B≤16|L≤4096|q≤4|splits=auto", key);
        // A sequence growing inside its bucket keeps its decision; one that doubles past it is timed again.
        Assert.Equal(key, PagedKvCache.TuningKey("sm_90", "NVIDIA H100 80GB HBM3", Element.F16, 128, 64, 8, 16, 4096, 4, null));
        Assert.NotEqual(key, PagedKvCache.TuningKey("sm_90", "NVIDIA H100 80GB HBM3", Element.F16, 128, 64, 8, 16, 4097, 4, null));
        // A caller's split count is part of the question.
        Assert.EndsWith("|splits=7", PagedKvCache.TuningKey("sm_90", "H100", Element.F16, 128, 64, 8, 1, 1, 1, 7), StringComparison.Ordinal);
        Assert.Equal([1L, 1L, 2L, 4L, 4L, 1024L, 1L << 31], new[] { 0, 1, 2, 3, 4, 1000, int.MaxValue }.Select(PagedKvCache.Bucket));
    }
}
