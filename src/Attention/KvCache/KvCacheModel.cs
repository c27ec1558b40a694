using KernelDsl.Attention.FlashAttention;

namespace KernelDsl.Attention.KvCache;

/// <summary>
/// The paged INT8 KV cache on the CPU, laid out exactly as the device's (docs/KV_CACHE.md, "Device layout"): the page
/// pool's codes and statistics, a <see cref="KvPageTable"/>, and one staging slot per live sequence holding the originals
/// of its last, partial page. <c>Append</c> requantizes every page the new tokens touch with
/// <see cref="KvCacheQuantization.QuantizePage"/>, so the device cache after the same appends must equal this one bit for bit.
/// Every refusal happens before any change. Not thread-safe.
/// </summary>
public sealed class KvCacheModel
{
    public KvCacheModel(int pages, int slots, int headsKv, int headDim, Element input = Element.F16, int pageSize = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(headsKv, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 1);
        if (input is not (Element.F16 or Element.BF16))
        {
            throw new ArgumentException("The cache takes f16 or bf16 tokens.", nameof(input));
        }
        Sequences = new KvSequences(pages, slots, pageSize);
        (HeadsKv, HeadDim, Input) = (headsKv, headDim, input);
        var pageElements = (long)headsKv * pageSize * headDim;
        KCodes = new sbyte[pages * pageElements];
        VCodes = new sbyte[pages * pageElements];
        KScale = new float[(long)pages * headsKv];
        KMean = new float[(long)pages * headsKv * headDim];
        VScale = new float[(long)pages * headsKv * headDim];
        KStaging = new ushort[slots * pageElements];
        VStaging = new ushort[slots * pageElements];
    }

    public KvSequences Sequences { get; }
    public KvPageTable Table => Sequences.Table;
    public int PageSize => Table.PageSize;
    public int Slots => Sequences.Slots;
    public int HeadsKv { get; }
    public int HeadDim { get; }
    public Element Input { get; }

    /// <summary>int8 [pages][Hkv][PageSize][D].</summary>
    public sbyte[] KCodes { get; }
    /// <summary>[pages][Hkv].</summary>
    public float[] KScale { get; }
    /// <summary>[pages][Hkv][D].</summary>
    public float[] KMean { get; }
    /// <summary>int8 [pages][Hkv][PageSize][D].</summary>
    public sbyte[] VCodes { get; }
    /// <summary>[pages][Hkv][D].</summary>
    public float[] VScale { get; }
    /// <summary>Bits [slots][Hkv][PageSize][D]: a slot's first LengthOf % PageSize tokens are its sequence's partial page; the rest is stale.</summary>
    public ushort[] KStaging { get; }
    public ushort[] VStaging { get; }

    public int AddSequence() => Sequences.AddSequence();

    /// <summary>
    /// Appends to each sequence of <paramref name="batch"/> its <paramref name="newTokens"/> entry of tokens: K and V bits
    /// [Σ newTokens][Hkv][D], the batch's sequences one after another (as the device takes them). All or nothing: with
    /// <paramref name="nonFinite"/> = Throw, as on the device, a NaN or ±Inf among them is refused like a batch that does not fit.
    /// </summary>
    /// <exception cref="NonFiniteAppendException">k or v holds a NaN or ±Inf and <paramref name="nonFinite"/> is Throw; nothing changed.</exception>
    public void Append(IReadOnlyList<int> batch, IReadOnlyList<int> newTokens, ReadOnlySpan<ushort> k, ReadOnlySpan<ushort> v,
        NonFiniteInputs nonFinite = NonFiniteInputs.Throw)
    {
        var row = HeadsKv * HeadDim;
        var total = newTokens?.Sum(n => (long)Math.Max(0, n)) ?? 0;
        if (k.Length != total * row || v.Length != total * row)
        {
            throw new ArgumentException($"k and v must both be [Σ newTokens = {total}][Hkv = {HeadsKv}][D = {HeadDim}] = {total * row} values; they have {k.Length} and {v.Length}.");
        }
        Sequences.Check(batch, newTokens!);  // refuses, changing nothing, when the pool lacks pages
        if (nonFinite == NonFiniteInputs.Throw && NonFiniteAppendException.Find(batch, newTokens!, k, v, Input, row) is { } bad)
        {
            throw bad;
        }
        var lengths = Sequences.Append(batch, newTokens!);
        var first = 0;
        for (var i = 0; i < batch.Count; i++)
        {
            var count = newTokens![i];
            Append(batch[i], lengths[i], k.Slice(first * row, count * row), v.Slice(first * row, count * row));
            first += count;
        }
    }

    /// <summary>Appends to one sequence; see the batch overload.</summary>
    public void Append(int sequence, ReadOnlySpan<ushort> k, ReadOnlySpan<ushort> v) =>
        Append([sequence], [k.Length / (HeadsKv * HeadDim)], k, v);

    /// <summary>Requantizes the pages that <paramref name="sequence"/>'s new tokens (its positions from <paramref name="old"/>) touch.</summary>
    private void Append(int sequence, int old, ReadOnlySpan<ushort> k, ReadOnlySpan<ushort> v)
    {
        var slot = SlotOf(sequence);
        var count = k.Length / (HeadsKv * HeadDim);
        if (count == 0)
        {
            return;
        }
        var (ps, d) = (PageSize, HeadDim);
        var end = old + count;
        var pages = Table.PagesOf(sequence);
        // One page's originals, [Hkv][fill][D]: staged slots below the append's start, new rows from it.
        var pageK = new ushort[HeadsKv * ps * d];
        var pageV = new ushort[HeadsKv * ps * d];
        for (var p = old / ps; p <= (end - 1) / ps; p++)
        {
            var fill = Math.Min(ps, end - p * ps);
            for (var h = 0; h < HeadsKv; h++)
            {
                for (var t = 0; t < fill; t++)
                {
                    var position = p * ps + t;
                    var to = (h * fill + t) * d;
                    if (position < old)
                    {
                        var from = ((slot * HeadsKv + h) * ps + t) * d;
                        KStaging.AsSpan(from, d).CopyTo(pageK.AsSpan(to));
                        VStaging.AsSpan(from, d).CopyTo(pageV.AsSpan(to));
                    }
                    else
                    {
                        var from = ((position - old) * HeadsKv + h) * d;
                        k.Slice(from, d).CopyTo(pageK.AsSpan(to));
                        v.Slice(from, d).CopyTo(pageV.AsSpan(to));
                    }
                }
            }
            var q = KvCacheQuantization.QuantizePage(pageK.AsSpan(0, HeadsKv * fill * d), pageV.AsSpan(0, HeadsKv * fill * d), Input, HeadsKv, fill, d, ps);
            var page = pages[p];
            q.KCodes.CopyTo(KCodes, (long)page * HeadsKv * ps * d);
            q.VCodes.CopyTo(VCodes, (long)page * HeadsKv * ps * d);
            q.KScale.CopyTo(KScale, (long)page * HeadsKv);
            q.KMean.CopyTo(KMean, (long)page * HeadsKv * d);
            q.VScale.CopyTo(VScale, (long)page * HeadsKv * d);
        }
        // The staging slot keeps the new partial page's originals: its new tokens (its earlier ones are there already).
        var last = (end - 1) / ps;
        for (var position = Math.Max(old, last * ps); position < end && end % ps != 0; position++)
        {
            for (var h = 0; h < HeadsKv; h++)
            {
                var to = ((slot * HeadsKv + h) * ps + position - last * ps) * d;
                var from = ((position - old) * HeadsKv + h) * d;
                k.Slice(from, d).CopyTo(KStaging.AsSpan(to));
                v.Slice(from, d).CopyTo(VStaging.AsSpan(to));
            }
        }
    }

    public int SlotOf(int sequence) => Sequences.SlotOf(sequence);

    /// <summary>Ends <paramref name="sequence"/>: its pages and staging slot return to the pool.</summary>
    public void Free(int sequence) => Sequences.Free(sequence);

    /// <summary>
    /// The pool dequantized, [pages][Hkv][PageSize][D] each: K = code · scale + mean, V = code · scale[channel], in float64
    /// (what <see cref="PagedAttentionReference.Forward"/> reads).
    /// </summary>
    public (double[] K, double[] V) Dequantize()
    {
        var (ps, d) = (PageSize, HeadDim);
        var k = new double[KCodes.LongLength];
        var v = new double[VCodes.LongLength];
        for (long i = 0; i < k.LongLength; i++)
        {
            var pageHead = i / (ps * d);
            var channel = pageHead * d + i % d;
            k[i] = KCodes[i] * (double)KScale[pageHead] + KMean[channel];
            v[i] = VCodes[i] * (double)VScale[channel];
        }
        return (k, v);
    }
}
