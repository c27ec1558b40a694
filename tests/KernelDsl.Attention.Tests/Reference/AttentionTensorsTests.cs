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
}
