using KernelDsl;
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
