using KernelDsl;
using KernelDsl.Attention.FlashAttention;

namespace AttentionTests.FlashAttention;

/// <summary>Head dims 96 and 256 (docs/HEAD_DIMS.md): every declared variant's head dim and input has its quantize kernels, sized as the kernels read scales.</summary>
public class HeadDimQuantizerTests
{
    [Theory]
    [InlineData(96)]
    [InlineData(256)]
    public void Head_dims_96_and_256_are_declared_for_f16_and_bf16_in_both_PV_modes(int headDim)
    {
        foreach (var input in new[] { Element.F16, Element.BF16 })
        {
            foreach (var causal in new[] { false, true })
            {
                Assert.Contains(AttentionVariant.All, v => v.HeadDim == headDim && v.Input == input && v.Causal == causal && v.Pv == PvPrecision.U8 && v.V == VStrategy.TransPrmt);
                Assert.Contains(AttentionVariant.All, v => v.HeadDim == headDim && v.Input == input && v.Causal == causal && v.Pv == PvPrecision.Float16);
            }
        }
        Assert.Contains(headDim, Int8Attention.HeadDims);
        Assert.DoesNotContain(AttentionVariant.All, v => v.HeadDim == headDim && v.Module.RequiresArchSpecific);
    }

    [Fact]
    public void Every_declared_head_dim_and_input_has_quantizers()
    {
        foreach (var variant in AttentionVariant.All)
        {
            object quantizers = variant.Input == Element.F16 ? Quantizers<Half>.For(variant.HeadDim) : Quantizers<ushort>.For(variant.HeadDim);
            Assert.NotNull(quantizers);
        }
    }

    [Theory]
    [InlineData(96)]
    [InlineData(256)]
    public void The_host_api_sizes_scales_like_the_kernels_read_them(int headDim)
    {
        var (h, u) = (Quantizers<Half>.For(headDim), Quantizers<ushort>.For(headDim));
        foreach (var (q, k) in new[] { (h.QScaleCount, h.KScaleCount), (u.QScaleCount, u.KScaleCount) })
        {
            Assert.Equal(2L * 3 * ((300 + AttentionVariant.QScaleRows - 1) / AttentionVariant.QScaleRows), q(2, 3, 300));
            Assert.Equal(2L * 3 * ((300 + AttentionVariant.KScaleKeys - 1) / AttentionVariant.KScaleKeys), k(2, 3, 300));
        }
        // Recipe A and the 16-bit P·V mode read V as it is: no π-transposed V at these head dims.
        Assert.Null(h.VPi);
        Assert.Null(u.VPi);
        Assert.Equal(headDim, HeadDimOf(h.Statistics.Launch));
        Assert.Equal(headDim, HeadDimOf(u.Statistics.Launch));
    }

    /// <summary>The generated HeadDim constant of the type that declares a launcher.</summary>
    internal static int HeadDimOf(Delegate launcher) => (int)launcher.Method.DeclaringType!.GetField("HeadDim")!.GetRawConstantValue()!;
}
