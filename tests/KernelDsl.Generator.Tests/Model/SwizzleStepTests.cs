using KernelDsl.Generator.Model;

namespace GeneratorTests.Model;

/// <summary>
/// The attention kernel computes a lane's swizzled offset once and steps it with an XOR and an add; these pin when that
/// factoring holds, since the emitter relies on SmemLayoutSpec.FactorsSteps to decide.
/// </summary>
public class SwizzleStepTests
{
    private static readonly (int Row, int Col)[] LdmatrixOrigins =
        Enumerable.Range(0, 32).Select(lane => (lane % 16, 16 * (lane / 16))).ToArray();

    private static int[] Steps(int count, int stride) => Enumerable.Range(0, count).Select(i => i * stride).ToArray();

    [Fact]
    public void Swizzle_343_on_128_byte_rows_factors_for_16_row_and_32_byte_steps()
    {
        var layout = new SmemLayoutSpec(Operand.K, Element.S8, new Swizzle(3, 4, 3));
        Assert.True(layout.FactorsSteps(128, LdmatrixOrigins, Steps(4, 16), Steps(4, 32)));
        // ...and each factored offset is the layout function's, element by element.
        foreach (var (row, col) in LdmatrixOrigins)
        {
            Assert.Equal(layout.ByteOffset(row + 48, col + 96, 128), (layout.ByteOffset(row, col, 128) ^ 96) + 48 * 128);
        }
    }

    [Fact]
    public void A_row_step_that_changes_the_xor_source_bits_does_not_factor()
    {
        // Swizzle(3,4,3) XORs row bits 0..2 of a 128-byte row into the 16-byte chunk: a 4-row step changes them.
        var layout = new SmemLayoutSpec(Operand.K, Element.S8, new Swizzle(3, 4, 3));
        Assert.False(layout.FactorsSteps(128, LdmatrixOrigins, Steps(2, 4), Steps(1, 32)));
    }

    [Fact]
    public void A_column_step_that_carries_into_the_lane_column_does_not_factor()
    {
        // Lanes 16..31 start at byte 16; a 16-byte step then carries instead of XOR-ing.
        var layout = new SmemLayoutSpec(Operand.K, Element.S8, Swizzle.None);
        Assert.False(layout.FactorsSteps(128, LdmatrixOrigins, Steps(1, 16), Steps(2, 16)));
        Assert.True(layout.FactorsSteps(128, LdmatrixOrigins, Steps(4, 16), Steps(4, 32)));
    }

    [Fact]
    public void Sixteen_bit_elements_swizzle_element_offsets_and_scale_back_to_bytes()
    {
        // The f16 V tile of the accuracy mode: 256-byte rows, Swizzle(3,3,4) on element offsets.
        var layout = new SmemLayoutSpec(Operand.V, Element.F16, new Swizzle(3, 3, 4));
        Assert.Equal(new Swizzle(3, 3, 4).Apply((5 * 256 + 64) / 2) * 2, layout.ByteOffset(5, 64, 256));
        Assert.True(layout.FactorsSteps(256, LdmatrixOrigins, Steps(4, 16), Steps(8, 32)));
        Assert.False(new SmemLayoutSpec(Operand.V, Element.F16, new Swizzle(3, 3, 3)).FactorsSteps(256, LdmatrixOrigins, Steps(4, 16), Steps(8, 32)));
    }
}
