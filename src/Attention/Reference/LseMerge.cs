namespace KernelDsl.Attention.Reference;

/// <summary>
/// The split-KV combine: partial attentions over disjoint key ranges, each with its own LSE, merge into the attention
/// over their union. lse = log Σ exp(lse_i) and O = Σ exp(lse_i − lse)·O_i, evaluated around the largest lse_i so
/// nothing overflows. A partial with lse −∞ saw no key and is ignored; a row no partial saw stays 0 with lse −∞.
/// </summary>
public static class LseMerge
{
    /// <param name="shape">Gives the layout of each partial's Output (as Q) and its Lse ([Batch][HeadsQ][TokensQ]).</param>
    /// <param name="partials">Partials over disjoint key ranges, e.g. from Float64Attention.Forward with a key range.</param>
    public static Float64AttentionResult Merge(AttentionShape shape, IReadOnlyList<Float64AttentionResult> partials)
    {
        if (partials.Count == 0)
        {
            throw new ArgumentException("At least one partial is needed.", nameof(partials));
        }
        foreach (var partial in partials)
        {
            if (partial.Output.Length != shape.QElements || partial.Lse.Length != shape.LseElements)
            {
                throw new ArgumentException(
                    $"Each partial needs {shape.QElements} outputs and {shape.LseElements} LSE entries, got {partial.Output.Length} and {partial.Lse.Length}.",
                    nameof(partials));
            }
        }
        var d = shape.HeadDim;
        var output = new double[shape.QElements];
        var lse = new double[shape.LseElements];
        for (var b = 0; b < shape.Batch; b++)
        {
            for (var h = 0; h < shape.HeadsQ; h++)
            {
                for (var i = 0; i < shape.TokensQ; i++)
                {
                    var index = shape.LseIndex(b, h, i);
                    var max = double.NegativeInfinity;
                    foreach (var partial in partials)
                    {
                        max = Math.Max(max, partial.Lse[index]);
                    }
                    if (double.IsNegativeInfinity(max))
                    {
                        lse[index] = double.NegativeInfinity;
                        continue;
                    }
                    var sum = 0.0;
                    foreach (var partial in partials)
                    {
                        sum += Math.Exp(partial.Lse[index] - max);
                    }
                    var merged = max + Math.Log(sum);
                    lse[index] = merged;
                    var offset = (int)shape.QStrides.Offset(b, h, i);
                    foreach (var partial in partials)
                    {
                        if (double.IsNegativeInfinity(partial.Lse[index]))
                        {
                            continue;
                        }
                        var weight = Math.Exp(partial.Lse[index] - merged);
                        for (var c = 0; c < d; c++)
                        {
                            output[offset + c] += weight * partial.Output[offset + c];
                        }
                    }
                }
            }
        }
        return new Float64AttentionResult(output, lse);
    }
}
