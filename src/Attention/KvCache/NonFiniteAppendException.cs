using System.Globalization;
using KernelDsl.Attention.FlashAttention;

namespace KernelDsl.Attention.KvCache;

/// <summary>
/// The new K or V of an append held a NaN or ±Inf (<see cref="NonFiniteInputs.Throw"/>, the default). Int8 codes cannot
/// hold them, and one would poison its page's K mean or scales for as long as the page lives, so the append was refused
/// before it changed anything: pages, staged originals, lengths and page table are as before the call.
/// <see cref="ArgumentException.ParamName"/> is "k" when k had any, else "v". Not <see cref="NonFiniteInputException"/>:
/// that one's contract is attention's (a q count, and outputs written but not meaningful).
/// </summary>
public sealed class NonFiniteAppendException : ArgumentException
{
    public NonFiniteAppendException(long kCount, long vCount, IReadOnlyList<int> sequences)
        : base(Describe(kCount, vCount, sequences ?? throw new ArgumentNullException(nameof(sequences))), kCount > 0 ? "k" : "v")
    {
        (KCount, VCount, Sequences) = (kCount, vCount, sequences.ToArray());
    }

    /// <summary>NaN and ±Inf elements in the new k.</summary>
    public long KCount { get; }

    /// <summary>NaN and ±Inf elements in the new v.</summary>
    public long VCount { get; }

    /// <summary>The batch's sequences whose new k or v held any, in batch order: appending the others alone succeeds.</summary>
    public IReadOnlyList<int> Sequences { get; }

    private static string Describe(long k, long v, IReadOnlyList<int> sequences) => string.Create(CultureInfo.InvariantCulture,
        $"The appended tokens hold NaN or ±Inf elements: k {k}, v {v}, in sequence(s) {string.Join(", ", sequences)}. " +
        $"Int8 codes cannot carry them and they would poison their pages' K mean and scales, so nothing was appended: the cache is as before the call. " +
        $"Pass NonFiniteInputs.Ignore to Append to skip this check (and its stream synchronization) and get the quantizers' treatment instead.");

    /// <summary>
    /// The exception for an append's new K and V bits ([Σ newTokens][Hkv][D], the batch's sequences one after another), or
    /// null when all are finite. The sequences are found here; the counts are <paramref name="counted"/> where a device
    /// counted them, else this recount's.
    /// </summary>
    internal static NonFiniteAppendException? Find(IReadOnlyList<int> batch, IReadOnlyList<int> newTokens, ReadOnlySpan<ushort> k, ReadOnlySpan<ushort> v,
        Element input, int rowElements, (long K, long V)? counted = null)
    {
        long kCount = 0, vCount = 0, first = 0;
        var sequences = new List<int>();
        for (var i = 0; i < batch.Count; i++)
        {
            var (start, length) = (checked((int)first), checked(newTokens[i] * rowElements));
            var kBad = KvCacheQuantization.CountNonFinite(k.Slice(start, length), input);
            var vBad = KvCacheQuantization.CountNonFinite(v.Slice(start, length), input);
            if (kBad + vBad > 0)
            {
                sequences.Add(batch[i]);
            }
            (kCount, vCount, first) = (kCount + kBad, vCount + vBad, first + length);
        }
        var (kTotal, vTotal) = counted ?? (kCount, vCount);
        return kTotal + vTotal == 0 ? null : new NonFiniteAppendException(kTotal, vTotal, sequences);
    }
}
