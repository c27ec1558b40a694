using System;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>Writes one shared-memory layout: a function from (row, byte column) to the swizzled byte offset.</summary>
public static class LayoutWriter
{
    public static string FunctionName(Operand operand) => "kdsl_smem_" + operand.ToString().ToLowerInvariant();

    public static void Write(CodeWriter w, SmemLayoutSpec layout, int rows, int rowBytes, string? name = null)
    {
        var swizzle = layout.Swizzle;
        var size = layout.Element.SizeInBytes();
        var what = swizzle.IsIdentity
            ? "identity"
            : FormattableString.Invariant($"element bits [{swizzle.Base + swizzle.Shift},{swizzle.Base + swizzle.Shift + swizzle.Bits}) XOR into [{swizzle.Base},{swizzle.Base + swizzle.Bits})");
        w.Line($"// {layout.Operand}: {layout.Element.CudaName()} tile of {rows} rows × {rowBytes} bytes, {swizzle}: {what}.");
        w.Block($"static __device__ __forceinline__ int {name ?? FunctionName(layout.Operand)}(int row, int col)", () =>
        {
            if (swizzle.IsIdentity)
            {
                w.Line($"return row * {rowBytes} + col;");
            }
            else if (size == 1)
            {
                w.Line($"const int o = row * {rowBytes} + col;");
                w.Line($"return o ^ ((o >> {swizzle.Shift}) & 0x{swizzle.Mask:x});");
            }
            else
            {
                // Swizzle element offsets, then scale back to bytes.
                w.Line($"const int e = (row * {rowBytes} + col) / {size};");
                w.Line($"return (e ^ ((e >> {swizzle.Shift}) & 0x{swizzle.Mask:x})) * {size} + (col % {size});");
            }
        });
    }
}
