using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.KvCache;

/// <summary>
/// What one page of the paged INT8 KV cache holds for all its KV heads, laid out as on the device (docs/KV_CACHE.md):
/// <paramref name="KCodes"/> and <paramref name="VCodes"/> int8 [Hkv][PageSize][D], code 0 past the page's last token;
/// <paramref name="KScale"/> [Hkv]; <paramref name="KMean"/> [Hkv][D]; <paramref name="VScale"/> [Hkv][D].
/// </summary>
public sealed record KvPageQuantization(sbyte[] KCodes, float[] KScale, float[] KMean, sbyte[] VCodes, float[] VScale);

/// <summary>
/// The cache's quantization of one page, exactly as the append kernel computes it: the prefill quantize kernels' arithmetic
/// (<see cref="QuantizeReference"/>, here called rather than repeated) applied to the page's tokens alone.
/// K: the page's channel mean, summed in token order in float32 (one slice: MeanSlices = 1) and divided once by the
/// page's token count; v = k − mean; one scale per page = absmax(v) / 127; codes rne(v · (1 / scale)).
/// V: one scale per channel over the page's tokens, codes likewise. A page still filling is quantized from the tokens it
/// holds so far, so appending to it rewrites all its codes and statistics.
/// </summary>
public static class KvCacheQuantization
{
    /// <summary>Quantizes a page's <paramref name="tokens"/> originals, K and V bits [Hkv][tokens][D] (f16 or bf16).</summary>
    public static KvPageQuantization QuantizePage(ReadOnlySpan<ushort> k, ReadOnlySpan<ushort> v, Element input, int headsKv, int tokens, int headDim, int pageSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(headsKv, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 1);
        if (tokens < 1 || tokens > pageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"a page holds 1 to {pageSize} tokens.");
        }
        var elements = headsKv * tokens * headDim;
        if (k.Length != elements || v.Length != elements)
        {
            throw new ArgumentException($"k and v must be [Hkv = {headsKv}][tokens = {tokens}][D = {headDim}] = {elements} values; they have {k.Length} and {v.Length}.");
        }
        QuantizeResult Run(ReadOnlySpan<ushort> x, QuantGranularity granularity, bool mean) =>
            QuantizeReference.Quantize(x, input, elements, tokens * headDim, headDim, 1, headsKv, tokens, 1f, new QuantizeOptions
            {
                HeadDim = headDim, Granularity = granularity, BlockRows = pageSize, SubtractChannelMean = mean, MeanSlices = 1,
            });
        var kq = Run(k, QuantGranularity.PerRowBlock, mean: true);
        var vq = Run(v, QuantGranularity.PerChannel, mean: false);
        return new KvPageQuantization(Pad(kq.Output, headsKv, tokens, headDim, pageSize), kq.Scales, kq.ChannelMean!, Pad(vq.Output, headsKv, tokens, headDim, pageSize), vq.Scales);
    }

    /// <summary>NaN and ±Inf among f16 or bf16 bits: exponent all ones, as the kernels' kdsl_nonfinite counts them.</summary>
    public static long CountNonFinite(ReadOnlySpan<ushort> bits, Element input)
    {
        var exponent = input == Element.BF16 ? 0x7F80 : 0x7C00;
        long count = 0;
        foreach (var b in bits)
        {
            count += (b & exponent) == exponent ? 1 : 0;
        }
        return count;
    }

    /// <summary>[Hkv][tokens][D] codes as a page's [Hkv][pageSize][D], zeros past the last token.</summary>
    private static sbyte[] Pad(sbyte[] codes, int headsKv, int tokens, int headDim, int pageSize)
    {
        var page = new sbyte[headsKv * pageSize * headDim];
        for (var h = 0; h < headsKv; h++)
        {
            Array.Copy(codes, h * tokens * headDim, page, h * pageSize * headDim, tokens * headDim);
        }
        return page;
    }
}
