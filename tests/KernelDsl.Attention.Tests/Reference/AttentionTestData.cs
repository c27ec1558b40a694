using KernelDsl.Attention.Reference;

namespace AttentionTests.Reference;

/// <summary>Random inputs for the attention references; every generator takes its seed so a failure can be replayed.</summary>
internal static class AttentionTestData
{
    public static int FreshSeed() => Random.Shared.Next();

    /// <summary>One N(0, 1) sample via Box–Muller.</summary>
    public static double Normal(Random rng)
    {
        var u1 = 1.0 - rng.NextDouble();
        var u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>N(mean, std²) samples, rounded to f16. Never all zero for count ≥ 1.</summary>
    public static Half[] Gaussian(int count, Random rng, double std = 1.0, Func<int, double>? offset = null)
    {
        var values = new Half[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = (Half)(std * Normal(rng) + (offset?.Invoke(i) ?? 0.0));
        }
        if (values.All(x => x == Half.Zero))
        {
            values[0] = Half.One;
        }
        return values;
    }

    /// <summary>Q, K, V of a shape, all N(0, 1) f16.</summary>
    public static (Half[] Q, Half[] K, Half[] V) Inputs(AttentionShape shape, int seed)
    {
        var rng = new Random(seed);
        return (Gaussian(shape.QElements, rng), Gaussian(shape.KvElements, rng), Gaussian(shape.KvElements, rng));
    }

    public static double[] ToDouble(Half[] values) => values.Select(x => (double)x).ToArray();

    public static AttentionShape Shape(int batch, int headsQ, int headsKv, int tokensQ, int tokensKv, int headDim, bool causal = false,
        TensorLayout layout = TensorLayout.BHSD, double? scale = null) =>
        new(batch, headsQ, headsKv, tokensQ, tokensKv, headDim, causal, scale, layout);

    /// <summary>The block sizes of the declared D = 128 / D = 64 quantize variants (BlockM 128, BlockN 64).</summary>
    public static Int8AttentionOptions Options(int headDim, PvMode pv = PvMode.U8) => headDim == 128
        ? new Int8AttentionOptions
        {
            BlockM = KernelDsl.Attention.Quantization.QuantizeQBlock128D128.BlockRows,
            BlockN = KernelDsl.Attention.Quantization.QuantizeKSmoothBlock64D128.BlockRows,
            // Int8Attention's K mean comes from the KvStatistics pass: its lanes and slices fix the summation order.
            KMeanSlices = KernelDsl.Attention.Quantization.KvStatisticsD128.MeanLanes,
            KMeanSliceTokens = KernelDsl.Attention.Quantization.KvStatisticsD128.SliceTokens,
            KMeanSliceGroup = KernelDsl.Attention.Quantization.KvStatisticsD128.MeanSliceGroup,
            Pv = pv,
        }
        : new Int8AttentionOptions
        {
            BlockM = KernelDsl.Attention.Quantization.QuantizeQBlock128D64.BlockRows,
            BlockN = KernelDsl.Attention.Quantization.QuantizeKSmoothBlock64D64.BlockRows,
            KMeanSlices = KernelDsl.Attention.Quantization.KvStatisticsD64.MeanLanes,
            KMeanSliceTokens = KernelDsl.Attention.Quantization.KvStatisticsD64.SliceTokens,
            KMeanSliceGroup = KernelDsl.Attention.Quantization.KvStatisticsD64.MeanSliceGroup,
            Pv = pv,
        };
}
