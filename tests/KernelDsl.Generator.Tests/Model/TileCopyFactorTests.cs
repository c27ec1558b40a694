using KernelDsl.Generator.Cuda;
using KernelDsl.Generator.Model;

namespace GeneratorTests.Model;

/// <summary>
/// The decode's stage loader computes a thread's few swizzled offsets once and adds constants per copy; these pin when
/// TileCopyWriter.Factor allows it, and that its phases and stride reproduce the layout function for every thread.
/// </summary>
public class TileCopyFactorTests
{
    private static int Offset(SmemLayoutSpec layout, int chunk, int rowBytes) =>
        layout.ByteOffset(chunk / (rowBytes / 16), chunk % (rowBytes / 16) * 16, rowBytes);

    [Theory]
    [InlineData(3, 128, 16, 2, 1024)]  // D = 128 pages: 4 rows a copy, Swizzle(3,4,3) repeats every 8 rows
    [InlineData(2, 64, 8, 1, 512)]     // D = 64 pages: 8 rows a copy, Swizzle(2,4,3) repeats every 8 rows of 64 bytes
    public void A_warp_copying_a_decode_page_needs_at_most_two_offsets(int bits, int rowBytes, int chunksPerThread, int phases, int stride)
    {
        var layout = new SmemLayoutSpec(Operand.K, Element.S8, new Swizzle(bits, 4, 3));
        Assert.Equal((phases, stride), TileCopyWriter.Factor(layout, 32, chunksPerThread, rowBytes));
        // Independently of Factor's own check: every thread's every copy, as the emitted code computes it.
        for (var t = 0; t < 32; ++t)
        {
            for (var i = 0; i < chunksPerThread; ++i)
            {
                Assert.Equal(Offset(layout, t + i * 32, rowBytes), Offset(layout, t + i % phases * 32, rowBytes) + i / phases * stride);
            }
        }
    }

    [Fact]
    public void An_unswizzled_tile_needs_one_offset()
    {
        var layout = new SmemLayoutSpec(Operand.K, Element.S8, Swizzle.None);
        Assert.Equal((1, 512), TileCopyWriter.Factor(layout, 32, 16, 128));
    }

    [Fact]
    public void No_factoring_when_it_saves_nothing_or_a_thread_changes_column()
    {
        var layout = new SmemLayoutSpec(Operand.K, Element.S8, new Swizzle(3, 4, 3));
        // Two copies a thread, half a swizzle period apart: two offsets are as many as the copies.
        Assert.Null(TileCopyWriter.Factor(layout, 32, 2, 128));
        // 24 threads over rows of 8 chunks keep one column; 20 do not.
        Assert.NotNull(TileCopyWriter.Factor(layout, 24, 16, 128));
        Assert.Null(TileCopyWriter.Factor(layout, 20, 16, 128));
    }
}
