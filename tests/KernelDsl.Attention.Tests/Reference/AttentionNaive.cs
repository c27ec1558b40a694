using KernelDsl.Attention.Reference;

namespace AttentionTests.Reference;

/// <summary>
/// Attention written a second way, to check Float64Attention: its own index arithmetic, a whole score matrix per head
/// with the mask written as j − i ≤ TokensKv − TokensQ, P normalised before P·V. Slow and obvious on purpose.
/// </summary>
internal static class AttentionNaive
{
    private static int Index(TensorLayout layout, int heads, int tokens, int d, int b, int h, int s, int c) => layout == TensorLayout.BHSD
        ? ((b * heads + h) * tokens + s) * d + c
        : ((b * tokens + s) * heads + h) * d + c;

    public static (double[] Output, double[] Lse) Forward(AttentionShape shape, double[] q, double[] k, double[] v)
    {
        int sq = shape.TokensQ, skv = shape.TokensKv, d = shape.HeadDim, hq = shape.HeadsQ, hkv = shape.HeadsKv;
        var output = new double[q.Length];
        var lse = new double[shape.Batch * hq * sq];
        for (var b = 0; b < shape.Batch; b++)
        {
            for (var h = 0; h < hq; h++)
            {
                var kvHead = h * hkv / hq;
                var scores = new double[sq, skv];
                for (var i = 0; i < sq; i++)
                {
                    for (var j = 0; j < skv; j++)
                    {
                        if (shape.Causal && j - i > skv - sq)
                        {
                            scores[i, j] = double.NegativeInfinity;
                            continue;
                        }
                        var dot = 0.0;
                        for (var c = 0; c < d; c++)
                        {
                            dot += q[Index(shape.Layout, hq, sq, d, b, h, i, c)] * k[Index(shape.Layout, hkv, skv, d, b, kvHead, j, c)];
                        }
                        scores[i, j] = dot * shape.SoftmaxScale;
                    }
                }
                for (var i = 0; i < sq; i++)
                {
                    var max = Enumerable.Range(0, skv).Max(j => scores[i, j]);
                    if (double.IsNegativeInfinity(max))
                    {
                        lse[(b * hq + h) * sq + i] = double.NegativeInfinity;
                        continue;
                    }
                    var weights = Enumerable.Range(0, skv).Select(j => Math.Exp(scores[i, j] - max)).ToArray();
                    var total = weights.Sum();
                    lse[(b * hq + h) * sq + i] = Math.Log(total) + max;
                    for (var c = 0; c < d; c++)
                    {
                        var acc = 0.0;
                        for (var j = 0; j < skv; j++)
                        {
                            acc += weights[j] / total * v[Index(shape.Layout, hkv, skv, d, b, kvHead, j, c)];
                        }
                        output[Index(shape.Layout, hq, sq, d, b, h, i, c)] = acc;
                    }
                }
            }
        }
        return (output, lse);
    }
}
