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

    /// <summary>
    /// Rows <paramref name="first"/> to + <paramref name="count"/> of token-major [tokens][heads][D] bits (the device's layout
    /// of Q, O, K and V) as values [heads][count][D] (the references' layout of one sequence).
    /// </summary>
    public static double[] HeadMajor(ushort[] packed, int first, int count, int heads, int headDim, Element input)
    {
        var result = new double[(long)heads * count * headDim];
        for (var t = 0; t < count; t++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var c = 0; c < headDim; c++)
                {
                    result[((long)h * count + t) * headDim + c] = Value(packed[((long)(first + t) * heads + h) * headDim + c], input);
                }
            }
        }
        return result;
    }
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

/// <summary>
/// One append with NaN and ±Inf planted where counting could go wrong, shared by the CPU and GPU tests: four sequences
/// holding <see cref="Lengths"/> tokens take <see cref="NewTokens"/> more, Hkv = 2. Bad values sit in the first new token
/// of a partial page, on both sides of a page boundary, and in tokens of a new partial page (read by its page's block and
/// again by the block that stages them); the second sequence stays finite.
/// </summary>
internal static class NonFiniteAppend
{
    public const int HeadsKv = 2;

    public static readonly int[] Lengths = [10, 64, 100, 5];

    public static readonly int[] NewTokens = [150, 1, 30, 2];

    /// <summary>A bad value at new token <paramref name="Token"/> of batch entry <paramref name="Sequence"/>, in K or V.</summary>
    public sealed record Planting(int Sequence, int Token, int Head, int Channel, bool V, string Value);

    public static readonly Planting[] Plantings =
    [
        new(0, 0, 0, 3, false, "NaN"),       // position 10: the first new token of a partial page
        new(0, 53, 1, 63, false, "+Inf"),    // position 63: the page's last slot
        new(0, 54, 0, 0, true, "-Inf"),      // position 64: the next page's first
        new(0, 140, 0, 5, false, "-Inf"),    // position 150, in the new partial page: staged as well as quantized
        new(0, 140, 1, 60, true, "NaN"),
        new(2, 29, 1, 63, true, "+Inf"),     // position 129, the last token: its new partial page
        new(3, 1, 0, 7, false, "NaN"),       // a page that stays partial
        new(3, 1, 0, 7, true, "NaN"),
    ];

    public static (long K, long V) Counts => (Plantings.Count(p => !p.V), Plantings.Count(p => p.V));

    /// <summary>The batch entries with a bad value, in batch order.</summary>
    public static int[] BadEntries => Plantings.Select(p => p.Sequence).Distinct().Order().ToArray();

    /// <summary>Fresh finite K (with channel offsets) and V for the append, with every planting in place.</summary>
    public static (ushort[] K, ushort[] V) Tokens(Random random, int headDim, Element input)
    {
        var total = NewTokens.Sum();
        var k = KvCacheTestData.Tokens(random, total, HeadsKv, headDim, input, KvCacheTestData.Offsets(random, HeadsKv, headDim));
        var v = KvCacheTestData.Tokens(random, total, HeadsKv, headDim, input);
        foreach (var p in Plantings)
        {
            (p.V ? v : k)[Index(p, headDim)] = Bits(p.Value, input);
        }
        return (k, v);
    }

    /// <summary>The same tokens with a finite value where each bad one was.</summary>
    public static (ushort[] K, ushort[] V) Repaired(ushort[] k, ushort[] v, int headDim, Element input)
    {
        var (kk, vv) = ((ushort[])k.Clone(), (ushort[])v.Clone());
        foreach (var p in Plantings)
        {
            (p.V ? vv : kk)[Index(p, headDim)] = input == Element.BF16 ? (ushort)0x3F80 : BitConverter.HalfToUInt16Bits((Half)1);
        }
        return (kk, vv);
    }

    /// <summary>The element of [Σ NewTokens][Hkv][D] a planting names.</summary>
    public static int Index(Planting p, int headDim) => ((NewTokens.Take(p.Sequence).Sum() + p.Token) * HeadsKv + p.Head) * headDim + p.Channel;

    public static ushort Bits(string value, Element input) => (input, value) switch
    {
        (Element.F16, "NaN") => 0x7E00,
        (Element.F16, "+Inf") => 0x7C00,
        (Element.F16, "-Inf") => 0xFC00,
        (Element.BF16, "NaN") => 0x7FC0,
        (Element.BF16, "+Inf") => 0x7F80,
        (Element.BF16, "-Inf") => 0xFF80,
        _ => throw new ArgumentException($"No bits for {value} in {input}.", nameof(value)),
    };
}
