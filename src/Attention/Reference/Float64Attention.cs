namespace KernelDsl.Attention.Reference;

/// <summary>
/// Attention in float64 and the natural-log log-sum-exp of each row's scores.
/// </summary>
/// <param name="Output">Laid out as Q (the shape's layout, HeadsQ × TokensQ).</param>
/// <param name="Lse">[Batch][HeadsQ][TokensQ], natural log; −∞ for a row that sees no key.</param>
public sealed record Float64AttentionResult(double[] Output, double[] Lse);

/// <summary>
/// The textbook softmax(σ·QKᵀ + mask)·V in float64, one row at a time with no blocking: the ground truth every
/// kernel and the int8 reference are measured against. A row with no visible key (causal with TokensQ &gt; TokensKv,
/// an empty key range, or a mask that hides every key) outputs 0 with LSE −∞, the value that drops out of an LSE merge.
/// With <see cref="AttentionModifiers"/>, the mask ANDs with the causal mask, and the score modifier receives the
/// float64 score σ·q·k rounded to float32 (the GPU evaluates it in float32); its float32 result is widened back.
/// </summary>
public static class Float64Attention
{
    public static Float64AttentionResult Forward(AttentionShape shape, ReadOnlySpan<Half> q, ReadOnlySpan<Half> k, ReadOnlySpan<Half> v, Range? keys = null,
        AttentionModifiers? modifiers = null) =>
        Forward(shape, AttentionTensors.Bits(q), AttentionTensors.Bits(k), AttentionTensors.Bits(v), Element.F16, keys, modifiers);

    /// <summary>f16 or bf16 inputs given as their bits.</summary>
    public static Float64AttentionResult Forward(AttentionShape shape, ReadOnlySpan<ushort> q, ReadOnlySpan<ushort> k, ReadOnlySpan<ushort> v,
        Element input, Range? keys = null, AttentionModifiers? modifiers = null)
    {
        shape.CheckLengths(q.Length, k.Length, v.Length);
        return Forward(shape, AttentionTensors.ToDouble(q, input), AttentionTensors.ToDouble(k, input), AttentionTensors.ToDouble(v, input), keys, modifiers);
    }

    /// <summary>
    /// Attention over the keys in <paramref name="keys"/> only (all keys when null), with the full problem's causal mask:
    /// the partial a split-KV kernel computes for one slice, ready for <see cref="LseMerge"/>.
    /// </summary>
    public static Float64AttentionResult Forward(AttentionShape shape, ReadOnlySpan<double> q, ReadOnlySpan<double> k, ReadOnlySpan<double> v, Range? keys = null,
        AttentionModifiers? modifiers = null)
    {
        var (score, mask) = (modifiers?.Score, modifiers?.Mask);
        shape.CheckLengths(q.Length, k.Length, v.Length);
        var (keyStart, keyCount) = (keys ?? Range.All).GetOffsetAndLength(shape.TokensKv);
        var d = shape.HeadDim;
        var output = new double[shape.QElements];
        var lse = new double[shape.LseElements];
        var scores = new double[shape.TokensKv];
        var (qs, kvs) = (shape.QStrides, shape.KvStrides);
        for (var b = 0; b < shape.Batch; b++)
        {
            for (var h = 0; h < shape.HeadsQ; h++)
            {
                var hkv = shape.KvHeadOf(h);
                for (var i = 0; i < shape.TokensQ; i++)
                {
                    var qRow = q.Slice((int)qs.Offset(b, h, i), d);
                    // With a mask the visible keys need not be a prefix: visit the whole range and test each key.
                    var end = mask is null ? Math.Min(keyStart + keyCount, shape.VisibleKeys(i)) : keyStart + keyCount;
                    var max = double.NegativeInfinity;
                    for (var j = keyStart; j < end; j++)
                    {
                        if (mask is not null && !modifiers!.IsVisible(shape, b, h, i, j))
                        {
                            scores[j] = double.NegativeInfinity;
                            continue;
                        }
                        var kRow = k.Slice((int)kvs.Offset(b, hkv, j), d);
                        var dot = 0.0;
                        for (var c = 0; c < d; c++)
                        {
                            dot += qRow[c] * kRow[c];
                        }
                        scores[j] = shape.SoftmaxScale * dot;
                        if (score is not null)
                        {
                            scores[j] = score((float)scores[j], b, h, i, j);
                        }
                        max = Math.Max(max, scores[j]);
                    }
                    if (double.IsNegativeInfinity(max))
                    {
                        lse[shape.LseIndex(b, h, i)] = double.NegativeInfinity;
                        continue;
                    }
                    var oRow = output.AsSpan((int)qs.Offset(b, h, i), d);
                    var sum = 0.0;
                    for (var j = keyStart; j < end; j++)
                    {
                        if ((mask is not null || score is not null) && double.IsNegativeInfinity(scores[j]))
                        {
                            continue; // masked (or sent to −∞ by the score modifier): weight exactly 0
                        }
                        var p = Math.Exp(scores[j] - max);
                        sum += p;
                        var vRow = v.Slice((int)kvs.Offset(b, hkv, j), d);
                        for (var c = 0; c < d; c++)
                        {
                            oRow[c] += p * vRow[c];
                        }
                    }
                    for (var c = 0; c < d; c++)
                    {
                        oRow[c] /= sum;
                    }
                    lse[shape.LseIndex(b, h, i)] = max + Math.Log(sum);
                }
            }
        }
        return new Float64AttentionResult(output, lse);
    }
}
