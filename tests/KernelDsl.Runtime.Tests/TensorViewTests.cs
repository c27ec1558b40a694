namespace KernelDsl.Runtime.Tests;

public class TensorViewTests
{
    [Fact]
    public void A_view_inside_the_buffer_with_a_contiguous_last_dimension_is_accepted()
    {
        // [batch 2, heads 4, seq 16, dim 64] in BSHD order inside a buffer of exactly that size.
        TensorView<sbyte>.Validate(2 * 16 * 4 * 64, [2, 4, 16, 64], [16 * 4 * 64, 64, 4 * 64, 1]);
    }

    [Theory]
    [InlineData(new long[] { 4, 8 }, new long[] { 8, 2 }, "strides", "contiguous")]
    [InlineData(new long[] { 4, 8 }, new long[] { 8 }, "strides", "has 1 entries")]
    [InlineData(new long[] { 4, 0 }, new long[] { 8, 1 }, "shape", "at least 1")]
    [InlineData(new long[] { 5, 8 }, new long[] { 8, 1 }, "shape", "reaches element 39")]
    [InlineData(new long[] { 4, 8 }, new long[] { -8, 1 }, "strides", "negative")]
    [InlineData(new long[0], new long[0], "shape", "at least one dimension")]
    public void A_bad_view_names_the_argument_and_the_rule(long[] shape, long[] strides, string argument, string rule)
    {
        var error = Assert.Throws<ArgumentException>(() => TensorView<float>.Validate(32, shape, strides));

        Assert.Equal(argument, error.ParamName);
        Assert.Contains(rule, error.Message);
    }
}
