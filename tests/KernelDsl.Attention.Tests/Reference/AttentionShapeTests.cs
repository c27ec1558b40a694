using KernelDsl.Attention.Reference;

namespace AttentionTests.Reference;

public class AttentionShapeTests
{
    [Theory]
    [InlineData(0, 1, 1, 1, 1, 1, "batch")]
    [InlineData(1, 0, 1, 1, 1, 1, "headsQ")]
    [InlineData(1, 1, 0, 1, 1, 1, "headsKv")]
    [InlineData(1, 1, 1, -1, 1, 1, "tokensQ")]
    [InlineData(1, 1, 1, 1, 0, 1, "tokensKv")]
    [InlineData(1, 1, 1, 1, 1, 0, "headDim")]
    [InlineData(1, 6, 4, 1, 1, 8, "headsKv")]
    public void Rejects_bad_dimensions_naming_the_argument(int b, int hq, int hkv, int sq, int skv, int d, string name)
    {
        var error = Assert.Throws<ArgumentException>(() => new AttentionShape(b, hq, hkv, sq, skv, d));
        Assert.Equal(name, error.ParamName);
    }

    [Fact]
    public void The_gqa_message_states_the_rule()
    {
        var error = Assert.Throws<ArgumentException>(() => new AttentionShape(1, 6, 4, 1, 1, 8));
        Assert.Contains("whole multiple", error.Message);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void Rejects_a_softmax_scale_that_is_not_finite_and_positive(double scale)
    {
        var error = Assert.Throws<ArgumentException>(() => new AttentionShape(1, 1, 1, 1, 1, 8, softmaxScale: scale));
        Assert.Equal("softmaxScale", error.ParamName);
    }

    [Fact]
    public void Defaults_to_one_over_root_head_dim()
    {
        var shape = new AttentionShape(1, 1, 1, 1, 1, 64);
        Assert.Equal(0.125, shape.SoftmaxScale);
        Assert.Equal((float)(0.125 * 1.4426950408889634), shape.QScaleMultiplier);
    }

    [Fact]
    public void Strides_follow_the_layout()
    {
        var bhsd = new AttentionShape(2, 8, 2, 5, 7, 16);
        Assert.Equal(new TensorStrides(8 * 5 * 16, 5 * 16, 16), bhsd.QStrides);
        Assert.Equal(new TensorStrides(2 * 7 * 16, 7 * 16, 16), bhsd.KvStrides);
        var bshd = new AttentionShape(2, 8, 2, 5, 7, 16, layout: TensorLayout.BSHD);
        Assert.Equal(new TensorStrides(5 * 8 * 16, 16, 8 * 16), bshd.QStrides);
        Assert.Equal(new TensorStrides(7 * 2 * 16, 16, 2 * 16), bshd.KvStrides);
    }

    [Fact]
    public void Gqa_maps_each_group_of_query_heads_to_one_kv_head()
    {
        var shape = new AttentionShape(1, 8, 2, 1, 1, 8);
        Assert.Equal(4, shape.GroupSize);
        Assert.Equal([0, 0, 0, 0, 1, 1, 1, 1], Enumerable.Range(0, 8).Select(shape.KvHeadOf));
    }

    [Fact]
    public void Causal_mask_is_aligned_bottom_right()
    {
        var wide = new AttentionShape(1, 1, 1, 3, 5, 8, causal: true);
        Assert.Equal([3, 4, 5], Enumerable.Range(0, 3).Select(wide.VisibleKeys));
        Assert.True(wide.IsVisible(0, 2));
        Assert.False(wide.IsVisible(0, 3));
        var tall = new AttentionShape(1, 1, 1, 5, 3, 8, causal: true);
        Assert.Equal([0, 0, 1, 2, 3], Enumerable.Range(0, 5).Select(tall.VisibleKeys));
        var full = new AttentionShape(1, 1, 1, 5, 3, 8);
        Assert.Equal([3, 3, 3, 3, 3], Enumerable.Range(0, 5).Select(full.VisibleKeys));
    }

    [Fact]
    public void Checks_input_lengths()
    {
        var shape = new AttentionShape(1, 2, 1, 3, 4, 8);
        shape.CheckLengths(48, 32, 32);
        Assert.Equal("k", Assert.Throws<ArgumentException>(() => shape.CheckLengths(48, 31, 32)).ParamName);
    }

}
