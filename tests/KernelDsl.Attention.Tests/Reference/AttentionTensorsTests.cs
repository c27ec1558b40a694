using KernelDsl.Attention.Reference;

namespace AttentionTests.Reference;

public class AttentionTensorsTests
{
    [Fact]
    public void Bf16_rounding_is_to_nearest_even()
    {
        Assert.Equal(0x3F80, AttentionTensors.SingleToBf16(1f));
        Assert.Equal(0x3F80, AttentionTensors.SingleToBf16(BitConverter.Int32BitsToSingle(0x3F808000)));   // tie, even below
        Assert.Equal(0x3F82, AttentionTensors.SingleToBf16(BitConverter.Int32BitsToSingle(0x3F818000)));   // tie, even above
        Assert.Equal(0x3F81, AttentionTensors.SingleToBf16(BitConverter.Int32BitsToSingle(0x3F808001)));
        Assert.Equal(0x7FFF, AttentionTensors.SingleToBf16(float.NaN));
        Assert.Equal(0x7F80, AttentionTensors.SingleToBf16(float.PositiveInfinity));
    }

    [Fact]
    public void Relayout_moves_each_head_row_and_back()
    {
        var source = Enumerable.Range(0, 2 * 3 * 4 * 2).Select(x => (double)x).ToArray();
        var bshd = AttentionTensors.Relayout<double>(source, 2, 3, 4, 2, TensorLayout.BHSD, TensorLayout.BSHD);
        // (b=1, h=2, s=3): offset 46 in BHSD, 1·24 + 3·6 + 2·2 = 46 in BSHD too; (b=0, h=1, s=0): 8 in BHSD, 2 in BSHD.
        Assert.Equal(source[8], bshd[2]);
        Assert.Equal(source[46], bshd[46]);
        Assert.Equal(source, AttentionTensors.Relayout<double>(bshd, 2, 3, 4, 2, TensorLayout.BSHD, TensorLayout.BHSD));
        Assert.Throws<ArgumentException>(() => AttentionTensors.Relayout<double>(source.AsSpan(1), 2, 3, 4, 2, TensorLayout.BHSD, TensorLayout.BSHD));
    }

    [Theory]
    [InlineData(TensorLayout.BHSD)]
    [InlineData(TensorLayout.BSHD)]
    public void Slice_takes_heads_and_tokens_in_the_same_layout_and_Place_puts_them_back(TensorLayout layout)
    {
        const int B = 2, H = 3, S = 5, D = 2;
        var shape = new AttentionShape(B, H, H, S, S, D, layout: layout);
        var source = Enumerable.Range(0, B * H * S * D).Select(x => (double)x).ToArray();
        var part = AttentionTensors.Slice<double>(source, B, H, S, D, layout, 1..3, 2..4);
        var partShape = new AttentionShape(B, 2, 2, 2, 2, D, layout: layout);
        Assert.Equal(partShape.QElements, part.Length);
        for (var b = 0; b < B; b++)
        {
            for (var h = 0; h < 2; h++)
            {
                for (var s = 0; s < 2; s++)
                {
                    Assert.Equal(source[(int)shape.QStrides.Offset(b, h + 1, s + 2)], part[(int)partShape.QStrides.Offset(b, h, s)]);
                }
            }
        }
        var target = new double[source.Length];
        AttentionTensors.Place<double>(part, target, B, H, S, D, layout, 1..3, 2..4);
        Assert.Equal(part.Sum(), target.Sum());
        Assert.Equal(part, AttentionTensors.Slice<double>(target, B, H, S, D, layout, 1..3, 2..4));
    }

    [Fact]
    public void Slice_and_Place_refuse_ranges_and_lengths_that_do_not_fit()
    {
        var source = new double[2 * 3 * 5 * 2];
        Assert.Equal("tokens", Assert.Throws<ArgumentException>(() => AttentionTensors.Slice<double>(source, 2, 3, 5, 2, TensorLayout.BHSD, .., 3..6)).ParamName);
        Assert.Equal("tokens", Assert.Throws<ArgumentException>(() => AttentionTensors.Slice<double>(source, 2, 3, 5, 2, TensorLayout.BHSD, .., 2..2)).ParamName);
        Assert.Equal("heads", Assert.Throws<ArgumentException>(() => AttentionTensors.Slice<double>(source, 2, 3, 5, 2, TensorLayout.BHSD, 2..4, ..)).ParamName);
        Assert.Equal("source", Assert.Throws<ArgumentException>(() => AttentionTensors.Slice<double>(source.AsSpan(1), 2, 3, 5, 2, TensorLayout.BHSD, .., ..)).ParamName);
        Assert.Equal("part", Assert.Throws<ArgumentException>(() => AttentionTensors.Place<double>(new double[3], source, 2, 3, 5, 2, TensorLayout.BHSD, .., 0..1)).ParamName);
    }
}
