using System;
using System.Linq;
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
        var destination = Destination(smem, $"{LayoutWriter.FunctionName(operand)}(row, col)", smemIsAddress);
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

    /// <summary>
    /// A copy of whole chunks (16 bytes each, no tails) from a source whose rows start <paramref name="sourcePitch"/>
    /// elements apart at <paramref name="sourceBase"/>. If the layout's offsets repeat with a stride (<see cref="SmemLayoutSpec.CopyPhases"/>),
    /// each thread computes a few swizzled offsets and its first source address once, and every copy adds constants that
    /// the copy instruction takes as immediate offsets; otherwise it is <see cref="Write"/>'s loop.
    /// </summary>
    public static void WriteWholeChunks(CodeWriter w, string copy, SmemLayoutSpec layout, string smem, int threads, int chunksPerThread, int rowBytes,
        string sourceBase, int sourcePitch, bool smemIsAddress = false)
    {
        if (layout.CopyPhases(threads, chunksPerThread, rowBytes) is not { } factor)
        {
            Write(w, copy, layout.Operand, smem, threads, chunksPerThread, rowBytes, [], "16", $"{sourceBase} + row * {sourcePitch} + col", sourceBase, smemIsAddress);
            return;
        }
        var (phases, stride) = factor;
        var name = layout.Operand.ToString().ToLowerInvariant();
        var chunksPerRow = rowBytes / 16;
        var rowsPerCopy = threads / chunksPerRow;
        var offset = LayoutWriter.FunctionName(layout.Operand);
        if (phases == 1)
        {
            w.Line($"// A thread's chunks keep one byte column, {rowsPerCopy} rows apart, each {stride} bytes after the one before in shared memory");
            w.Line($"// (checked for every thread when generated): its offset and first source are computed once, and each copy adds");
            w.Line($"// constants, which the instruction takes as immediate offsets.");
        }
        else
        {
            w.Line($"// A thread's chunks keep one byte column, {rowsPerCopy} rows apart; their swizzled offsets repeat {stride} bytes on every {phases}");
            w.Line($"// copies (checked for every thread when generated): {phases} offsets and the first source are computed once, and each");
            w.Line($"// copy adds constants, which the instruction takes as immediate offsets.");
        }
        w.Line($"const int {name}_row = tid / {chunksPerRow}, {name}_col = (tid % {chunksPerRow}) * 16;");
        var offsets = Enumerable.Range(0, phases).Select(j => $"{offset}({name}_row{(j == 0 ? "" : $" + {j * rowsPerCopy}")}, {name}_col)").ToList();
        var declaration = phases == 1 ? $"{name}_o = {offsets[0]}" : $"{name}_o[{phases}] = {{{string.Join(", ", offsets)}}}";
        w.Line($"const int {declaration};");
        w.Line($"const auto {name}_src = {sourceBase} + {name}_row * {sourcePitch} + {name}_col;");
        var shared = phases == 1 ? $"{name}_o + i * {stride}" : $"{name}_o[i % {phases}] + i / {phases} * {stride}";
        var destination = Destination(smem, shared, smemIsAddress);
        w.Line($"#pragma unroll");
        w.Line($"for (int i = 0; i < {chunksPerThread}; ++i) {copy}({destination}, {name}_src + i * {rowsPerCopy * sourcePitch}, 16);");
    }

    /// <summary>A chunk's shared-memory destination: <paramref name="smem"/> plus its offset, converted to the shared window unless it already is.</summary>
    private static string Destination(string smem, string offset, bool smemIsAddress) =>
        smemIsAddress ? $"{smem} + {offset}" : $"kdsl_smem({smem} + {offset})";
}
