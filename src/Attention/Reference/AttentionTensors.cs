using System.Runtime.InteropServices;

namespace KernelDsl.Attention.Reference;

/// <summary>
/// Element conversions and re-layouts the attention references share. Widening f16/bf16 to float reuses
/// <see cref="QuantizeReference"/>; it has no float → bf16 rounding, so that one lives here.
/// </summary>
public static class AttentionTensors
{
    /// <summary>CUDA's __float2bfloat16_rn: round to nearest, ties to even; any NaN becomes the canonical 0x7FFF.</summary>
    public static ushort SingleToBf16(float value)
    {
        if (float.IsNaN(value))
        {
            return 0x7FFF;
        }
        var bits = BitConverter.SingleToUInt32Bits(value);
        var lsb = (bits >> 16) & 1u;
        return (ushort)((bits + 0x7FFFu + lsb) >> 16);
    }

    /// <summary>float → f16 bits, round to nearest even (CUDA's __float2half_rn).</summary>
    public static ushort SingleToF16(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>Rounds to <paramref name="element"/> (F16 or BF16) and returns the bits.</summary>
    public static ushort Round(float value, Element element) => element switch
    {
        Element.F16 => SingleToF16(value),
        Element.BF16 => SingleToBf16(value),
        _ => throw new ArgumentException("Only f16 and bf16 are 16-bit float elements here.", nameof(element)),
    };

    public static float Widen(ushort bits, Element element) => element switch
    {
        Element.F16 => QuantizeReference.F16ToSingle(bits),
        Element.BF16 => QuantizeReference.Bf16ToSingle(bits),
        _ => throw new ArgumentException("Only f16 and bf16 are 16-bit float elements here.", nameof(element)),
    };

    public static double[] ToDouble(ReadOnlySpan<ushort> bits, Element element)
    {
        var result = new double[bits.Length];
        for (var i = 0; i < bits.Length; i++)
        {
            result[i] = Widen(bits[i], element);
        }
        return result;
    }

    public static ReadOnlySpan<ushort> Bits(ReadOnlySpan<Half> values) => MemoryMarshal.Cast<Half, ushort>(values);

    /// <summary>Copies a [batch, heads, tokens, headDim] tensor from one layout to the other.</summary>
    public static T[] Relayout<T>(ReadOnlySpan<T> source, int batch, int heads, int tokens, int headDim, TensorLayout from, TensorLayout to)
    {
        if (source.Length != (long)batch * heads * tokens * headDim)
        {
            throw new ArgumentException($"source has {source.Length} elements; [{batch}, {heads}, {tokens}, {headDim}] needs {(long)batch * heads * tokens * headDim}.", nameof(source));
        }
        var target = new T[source.Length];
        var fromShape = new AttentionShape(batch, heads, heads, tokens, tokens, headDim, layout: from).QStrides;
        var toShape = new AttentionShape(batch, heads, heads, tokens, tokens, headDim, layout: to).QStrides;
        for (var b = 0; b < batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var s = 0; s < tokens; s++)
                {
                    source.Slice((int)fromShape.Offset(b, h, s), headDim).CopyTo(target.AsSpan((int)toShape.Offset(b, h, s), headDim));
                }
            }
        }
        return target;
    }
}
