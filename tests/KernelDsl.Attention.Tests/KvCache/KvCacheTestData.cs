using KernelDsl;
using KernelDsl.Attention.KvCache;
using KernelDsl.Attention.Reference;
using AttentionTests.Reference;

namespace AttentionTests.KvCache;

/// <summary>New K/V tokens for the paged cache's tests (CPU and GPU): fresh random values with K's structure, never zero.</summary>
internal static class KvCacheTestData
{
    /// <summary>3·N(0, 1) per (KV head, channel): the per-channel offsets K smoothing exists for (docs/KV_CACHE.md).</summary>
    public static double[] Offsets(Random random, int headsKv, int headDim) =>
        Enumerable.Range(0, headsKv * headDim).Select(_ => 3 * AttentionTestData.Normal(random)).ToArray();

    /// <summary>Bits of <paramref name="tokens"/> tokens [tokens][Hkv][D]: N(0, 1) plus <paramref name="offsets"/>[h·D + c], rounded to the element.</summary>
    public static ushort[] Tokens(Random random, int tokens, int headsKv, int headDim, Element input, double[]? offsets = null)
    {
        var bits = new ushort[tokens * headsKv * headDim];
        for (var i = 0; i < bits.Length; i++)
        {
            var value = AttentionTestData.Normal(random) + (offsets?[i % (headsKv * headDim)] ?? 0);
            bits[i] = input == Element.BF16
                ? (ushort)(BitConverter.SingleToUInt32Bits((float)value) >> 16)
                : BitConverter.HalfToUInt16Bits((Half)value);
        }
        return bits;
    }

    public static double Value(ushort bits, Element input) =>
        input == Element.BF16 ? QuantizeReference.Bf16ToSingle(bits) : QuantizeReference.F16ToSingle(bits);
}

/// <summary>Two caches hold the same tokens of a sequence: equal page statistics and codes page by page, equal staged originals.</summary>
internal static class KvCacheAssert
{
    public static void SameSequence(KvCacheModel expected, int expectedId, KvCacheModel actual, int actualId)
    {
        var length = expected.Table.LengthOf(expectedId);
        Assert.Equal(length, actual.Table.LengthOf(actualId));
        var (hkv, d, ps) = (expected.HeadsKv, expected.HeadDim, expected.PageSize);
        var (pe, pa) = (expected.Table.PagesOf(expectedId), actual.Table.PagesOf(actualId));
        for (var j = 0; j < pe.Count; j++)
        {
            Assert.Equal(expected.KCodes.AsSpan(pe[j] * hkv * ps * d, hkv * ps * d).ToArray(), actual.KCodes.AsSpan(pa[j] * hkv * ps * d, hkv * ps * d).ToArray());
            Assert.Equal(expected.VCodes.AsSpan(pe[j] * hkv * ps * d, hkv * ps * d).ToArray(), actual.VCodes.AsSpan(pa[j] * hkv * ps * d, hkv * ps * d).ToArray());
            Assert.Equal(expected.KScale.AsSpan(pe[j] * hkv, hkv).ToArray(), actual.KScale.AsSpan(pa[j] * hkv, hkv).ToArray());
            Assert.Equal(expected.KMean.AsSpan(pe[j] * hkv * d, hkv * d).ToArray(), actual.KMean.AsSpan(pa[j] * hkv * d, hkv * d).ToArray());
            Assert.Equal(expected.VScale.AsSpan(pe[j] * hkv * d, hkv * d).ToArray(), actual.VScale.AsSpan(pa[j] * hkv * d, hkv * d).ToArray());
        }
        var fill = length % ps;
        for (var h = 0; h < hkv; h++)
        {
            var (se, sa) = (((long)expected.SlotOf(expectedId) * hkv + h) * ps * d, ((long)actual.SlotOf(actualId) * hkv + h) * ps * d);
            Assert.Equal(expected.KStaging.AsSpan((int)se, fill * d).ToArray(), actual.KStaging.AsSpan((int)sa, fill * d).ToArray());
            Assert.Equal(expected.VStaging.AsSpan((int)se, fill * d).ToArray(), actual.VStaging.AsSpan((int)sa, fill * d).ToArray());
        }
    }
}
