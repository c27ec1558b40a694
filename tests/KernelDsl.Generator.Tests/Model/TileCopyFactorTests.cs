using KernelDsl.Generator.Cuda;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace GeneratorTests.Model;

/// <summary>
/// The decode's stage loader computes a thread's few swizzled offsets once and adds constants per copy
/// (TileCopyWriter.WriteWholeChunks). These pin when SmemLayoutSpec.CopyPhases allows it, and that the emitted addresses, as
/// the emitted expressions compute them, are the general copy loop's for every thread and copy.
/// </summary>
public class TileCopyFactorTests
{
    [Theory]
    [InlineData(3, 128, 16, 2, 1024)]  // D = 128 pages: 4 rows a copy, Swizzle(3,4,3) repeats every 8 rows
    [InlineData(2, 64, 8, 1, 512)]     // D = 64 pages: 8 rows a copy, Swizzle(2,4,3) repeats every 8 rows of 64 bytes
    public void A_warp_copying_a_decode_page_needs_at_most_two_offsets(int bits, int rowBytes, int chunksPerThread, int phases, int stride)
    {
        var layout = new SmemLayoutSpec(Operand.K, Element.S8, new Swizzle(bits, 4, 3));
        Assert.Equal((phases, stride), layout.CopyPhases(32, chunksPerThread, rowBytes));

        var (rowsPerCopy, chunksPerRow) = (32 / (rowBytes / 16), rowBytes / 16);
        for (var tid = 0; tid < 32; ++tid)
        {
            for (var i = 0; i < chunksPerThread; ++i)
            {
                // The general loop: chunk c = tid + 32·i at row c / chunksPerRow, byte column 16·(c % chunksPerRow).
                var c = tid + 32 * i;
                var (row, col) = (c / chunksPerRow, c % chunksPerRow * 16);
                // The factored loop: k_o[i % phases] + i / phases · stride, k_src + i · rowsPerCopy · pitch.
                var (firstRow, firstCol) = (tid / chunksPerRow, tid % chunksPerRow * 16);
                var shared = layout.ByteOffset(firstRow + i % phases * rowsPerCopy, firstCol, rowBytes) + i / phases * stride;
                Assert.Equal(layout.ByteOffset(row, col, rowBytes), shared);
                Assert.Equal(row * rowBytes + col, firstRow * rowBytes + firstCol + i * rowsPerCopy * rowBytes);
            }
        }
    }

    [Fact]
    public void The_factored_loop_is_emitted_with_the_factor_and_the_one_source()
    {
        var layout = new SmemLayoutSpec(Operand.K, Element.S8, new Swizzle(3, 4, 3));
        var w = new CodeWriter();
        TileCopyWriter.WriteWholeChunks(w, "kdsl_cp_async_16", layout, "s", 32, 16, 128, "k", 128, smemIsAddress: true);
        var text = w.ToString();
        Assert.Contains("const int k_o[2] = {kdsl_smem_k(k_row, k_col), kdsl_smem_k(k_row + 4, k_col)};", text);
        Assert.Contains("const auto k_src = k + k_row * 128 + k_col;", text);
        Assert.Contains("kdsl_cp_async_16(s + k_o[i % 2] + i / 2 * 1024, k_src + i * 512, 16);", text);
    }

    [Fact]
    public void A_copy_that_does_not_factor_keeps_the_general_loop()
    {
        var layout = new SmemLayoutSpec(Operand.K, Element.S8, new Swizzle(3, 4, 3));
        var w = new CodeWriter();
        // Two copies a thread, half a swizzle period apart: two offsets would be as many as the copies.
        Assert.Null(layout.CopyPhases(32, 2, 128));
        TileCopyWriter.WriteWholeChunks(w, "kdsl_cp_async_16", layout, "s", 32, 2, 128, "k", 128, smemIsAddress: true);
        Assert.Contains("kdsl_cp_async_16(s + kdsl_smem_k(row, col), bytes > 0 ? k + row * 128 + col : k, bytes);", w.ToString());
    }

    [Fact]
    public void An_unswizzled_tile_needs_one_offset_and_a_thread_must_keep_its_column()
    {
        Assert.Equal((1, 512), new SmemLayoutSpec(Operand.K, Element.S8, Swizzle.None).CopyPhases(32, 16, 128));
        var swizzled = new SmemLayoutSpec(Operand.K, Element.S8, new Swizzle(3, 4, 3));
        // 24 threads over rows of 8 chunks keep one column; 20 do not.
        Assert.NotNull(swizzled.CopyPhases(24, 16, 128));
        Assert.Null(swizzled.CopyPhases(20, 16, 128));
    }
}
