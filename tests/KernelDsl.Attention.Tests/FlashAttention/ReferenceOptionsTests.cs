using AttentionTests.Reference;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;

namespace AttentionTests.FlashAttention;

/// <summary>
/// Int8Attention.ReferenceOptions: the CPU reference's parameters for a kernel, which the CLI's and the quick start's
/// CPU runs use. Held to the tests' own spelling of the declared quantizers and statistics pass (AttentionTestData), so a
/// field one side forgets (K's mean in groups of slices, once) shows here.
/// </summary>
public class ReferenceOptionsTests
{
    [Theory]
    [InlineData(128)]
    [InlineData(64)]
    public void A_two_pass_kernels_options_are_the_declared_quantizers_blocks_and_mean_order(int headDim)
    {
        var kernel = headDim == 128 ? Int8AttentionD128TransPrmt.Info : Int8AttentionD64TransPrmt.Info;
        var expected = AttentionTestData.Options(headDim);
        var actual = Int8Attention.ReferenceOptions(kernel);
        Assert.Equal(
            (expected.BlockM, expected.BlockN, expected.KeysPerKScale, expected.Pv, expected.KMeanSlices, expected.KMeanSliceTokens, expected.KMeanSliceGroup),
            (actual.BlockM, actual.BlockN, actual.KeysPerKScale, actual.Pv, actual.KMeanSlices, actual.KMeanSliceTokens, actual.KMeanSliceGroup));
        Assert.True(actual.KMeanSliceGroup > 0, "the statistics pass adds its slices in groups: a reference without them sums K's mean in another order");
    }

    [Fact]
    public void Each_kernels_own_choices_carry_over()
    {
        Assert.Equal(1, Int8Attention.ReferenceOptions(Int8AttentionD128WgmmaFusedQ.Info).BlockM);  // Q scaled per row in the kernel
        Assert.Equal(PvMode.F16, Int8Attention.ReferenceOptions(Int8AttentionD128F16PV.Causal.Info).Pv);
        Assert.Equal(PvMode.E4M3, Int8Attention.ReferenceOptions(Int8AttentionD128WgmmaFp8.Info).Pv);
        var wgmma = Int8Attention.ReferenceOptions(Int8AttentionD128Wgmma.Info);
        Assert.Equal((128, 64), (wgmma.BlockN, wgmma.KeysPerKScale));
        Assert.All(Int8Attention.Kernels, k => Int8Attention.ReferenceOptions(k).Validate());
    }
}
