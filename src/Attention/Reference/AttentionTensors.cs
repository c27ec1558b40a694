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

    /// <summary>
    /// Heads <paramref name="heads"/> and tokens <paramref name="tokens"/> of a [batch, headCount, tokenCount, headDim]
    /// tensor in <paramref name="layout"/>, as a dense tensor of the same layout: a rank's shard of Q, K or V. An LSE
    /// ([batch][heads][tokens]) is such a tensor in BHSD with headDim 1.
    /// </summary>
    public static T[] Slice<T>(ReadOnlySpan<T> source, int batch, int headCount, int tokenCount, int headDim, TensorLayout layout, Range heads, Range tokens)
    {
        var (whole, part) = Shapes(source.Length, nameof(source), batch, headCount, tokenCount, headDim, layout, heads, tokens);
        var target = new T[part.QElements];
        foreach (var (inWhole, inPart) in Rows(whole, part, heads, tokens))
        {
            source.Slice(inWhole, headDim).CopyTo(target.AsSpan(inPart, headDim));
        }
        return target;
    }

    /// <summary>The inverse of <see cref="Slice"/>: writes <paramref name="part"/> into those heads and tokens of <paramref name="target"/>.</summary>
    public static void Place<T>(ReadOnlySpan<T> part, Span<T> target, int batch, int headCount, int tokenCount, int headDim, TensorLayout layout, Range heads, Range tokens)
    {
        var (whole, shape) = Shapes(target.Length, nameof(target), batch, headCount, tokenCount, headDim, layout, heads, tokens);
        if (part.Length != shape.QElements)
        {
            throw new ArgumentException($"part has {part.Length} elements; {shape.HeadsQ} heads × {shape.TokensQ} tokens need {shape.QElements}.", nameof(part));
        }
        foreach (var (inWhole, inPart) in Rows(whole, shape, heads, tokens))
        {
            part.Slice(inPart, headDim).CopyTo(target.Slice(inWhole, headDim));
        }
    }

    /// <summary>The whole tensor's shape and the part's (its heads and tokens the ranges' lengths), both as Q of a self-attention shape.</summary>
    private static (AttentionShape Whole, AttentionShape Part) Shapes(int length, string tensor, int batch, int headCount, int tokenCount, int headDim,
        TensorLayout layout, Range heads, Range tokens)
    {
        var whole = new AttentionShape(batch, headCount, headCount, tokenCount, tokenCount, headDim, layout: layout);
        if (length != whole.QElements)
        {
            throw new ArgumentException($"{tensor} has {length} elements; [{batch}, {headCount}, {tokenCount}, {headDim}] needs {whole.QElements}.", tensor);
        }
        var (h, s) = (Within(heads, headCount, nameof(heads)), Within(tokens, tokenCount, nameof(tokens)));
        return (whole, new AttentionShape(batch, h, h, s, s, headDim, layout: layout));
    }

    private static int Within(Range range, int count, string name)
    {
        var (start, end) = (range.Start.GetOffset(count), range.End.GetOffset(count));
        return start >= 0 && start < end && end <= count ? end - start
            : throw new ArgumentException($"{name} {range} must be a non-empty range within [0, {count}).", name);
    }

    /// <summary>The offset of each head row of the part, in the whole tensor and in the part.</summary>
    private static IEnumerable<(int InWhole, int InPart)> Rows(AttentionShape whole, AttentionShape part, Range heads, Range tokens)
    {
        var (h0, s0) = (heads.Start.GetOffset(whole.HeadsQ), tokens.Start.GetOffset(whole.TokensQ));
        for (var b = 0; b < part.Batch; b++)
        {
            for (var h = 0; h < part.HeadsQ; h++)
            {
                for (var s = 0; s < part.TokensQ; s++)
                {
                    yield return ((int)whole.QStrides.Offset(b, h0 + h, s0 + s), (int)part.QStrides.Offset(b, h, s));
                }
            }
        }
    }
}
