using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The one global → shared tile copy every kernel uses: each thread moves 16-byte chunks c = tid, tid + threads, ...
/// of a row-major tile (chunk c at row c / (rowBytes / 16), byte column 16 · (c % (rowBytes / 16))) into the operand's
/// swizzled layout. A chunk gets <c>bytes</c> valid source bytes (0 to 16); the copy atom zero-fills the rest, so tails
/// need no branch in the math.
/// </summary>
public static class TileCopyWriter
{
    /// <param name="copy">The copy function (kdsl_cp_async_16 or kdsl_ldg_sts_16).</param>
    /// <param name="prelude">Lines after row and col are known, e.g. the chunk's global coordinates.</param>
    /// <param name="bytes">The chunk's valid source bytes.</param>
    /// <param name="source">Its source address when bytes &gt; 0.</param>
    /// <param name="safeSource">An always-valid address passed when bytes is 0 (nothing is read).</param>
    /// <param name="smemIsAddress">
    /// Whether <paramref name="smem"/> is already a 32-bit shared-window address (a u32 the caller converted once) rather
    /// than a generic pointer: each chunk then costs an add, not a conversion the compiler cannot share between chunks.
    /// </param>
    public static void Write(CodeWriter w, string copy, Operand operand, string smem, int threads, int chunksPerThread, int rowBytes,
        string[] prelude, string bytes, string source, string safeSource, bool smemIsAddress = false)
    {
        var destination = smemIsAddress
            ? $"{smem} + {LayoutWriter.FunctionName(operand)}(row, col)"
            : $"kdsl_smem({smem} + {LayoutWriter.FunctionName(operand)}(row, col))";
        w.Line($"#pragma unroll");
        w.Block($"for (int i = 0; i < {chunksPerThread}; ++i)", () =>
        {
            w.Line($"const int c = tid + i * {threads};");
            w.Line($"const int row = c / {rowBytes / 16}, col = (c % {rowBytes / 16}) * 16;");
            foreach (var line in prelude)
            {
                w.Line($"{line}");
            }
            w.Line($"const int bytes = {bytes};");
            w.Line($"{copy}({destination}, bytes > 0 ? {source} : {safeSource}, bytes);");
        });
    }
}
