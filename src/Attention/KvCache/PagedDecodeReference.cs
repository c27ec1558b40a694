using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.KvCache;

/// <summary>
/// CPU references of decode over the paged INT8 cache (docs/KV_CACHE.md). <see cref="Dequantized"/> is float64 attention
/// over what the cache stores, so its distance to float64 over the original tokens is the cache's own error.
/// <see cref="Int8"/> repeats the decode kernel's arithmetic: Q rounded to int8 per row, int32 S per page plus q·mean,
/// exp2 softmax with P rounded to u8 (×255) against each warp's running max, int32 P·V times the page's V scales, the
/// warps of a split and then the splits merged by LSE; so the GPU's distance to it is the kernel's float rounding alone.
/// Both take the variant's modifiers as the kernel applies them: q and k are positions in the cache (query j of a sequence's
/// n is at length − n + j), b the sequence's index in the batch, h the query head; the score modifier sees the natural-log
/// score; a mask ANDs with causal, and the int8 model splits only the pages the mask shows a tile, as the kernel does.
/// </summary>
public static class PagedDecodeReference
{
    private const double PScale = 255;

    /// <summary>
    /// Float64 decode (causal, bottom-right) of <paramref name="batch"/> over <paramref name="model"/>'s dequantized pages;
    /// <paramref name="queries"/> holds each sequence's [Hq][Sq][D].
    /// </summary>
    public static IReadOnlyList<Float64AttentionResult> Dequantized(KvCacheModel model, IReadOnlyList<int> batch, IReadOnlyList<double[]> queries, int headsQ,
        double? softmaxScale = null, AttentionModifiers? modifiers = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (k, v) = model.Dequantize();
        return PagedAttentionReference.Forward(model.Table, batch, queries, k, v, headsQ, model.HeadsKv, model.HeadDim, causal: true, softmaxScale, modifiers);
    }

    /// <summary>
    /// The decode kernel's algorithm over <paramref name="model"/>'s codes: each sequence's pages split into
    /// <paramref name="splits"/> contiguous ranges as the kernel splits them, each range cut into steps of
    /// <paramref name="stageKeys"/> keys (a page, or half of one) dealt to <paramref name="warps"/> warps (step w, w + warps, ...)
    /// with one online softmax each. <paramref name="queries"/> holds each sequence's [Hq][Sq][D], the values of its f16/bf16 queries.
    /// </summary>
    public static IReadOnlyList<Float64AttentionResult> Int8(KvCacheModel model, IReadOnlyList<int> batch, IReadOnlyList<double[]> queries, int headsQ,
        int splits, int warps = 4, double? softmaxScale = null, AttentionModifiers? modifiers = null, int stageKeys = 64)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentOutOfRangeException.ThrowIfLessThan(splits, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(warps, 1);
        var (d, ps, hkv) = (model.HeadDim, model.PageSize, model.HeadsKv);
        if (stageKeys < 1 || ps % stageKeys != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(stageKeys), stageKeys, $"a step is a page of {ps} keys or an equal part of one");
        }
        var steps = ps / stageKeys;
        if (headsQ % hkv != 0)
        {
            throw new ArgumentException($"headsQ = {headsQ} must be a multiple of the cache's {hkv} KV heads.", nameof(headsQ));
        }
        // σ·log₂e, or σ alone where a score modifier takes the natural-log score (its result is scaled by log₂e).
        var scale = (float)((softmaxScale ?? 1.0 / Math.Sqrt(d)) * (modifiers?.Score is null ? 1.4426950408889634 : 1));
        var results = new Float64AttentionResult[batch.Count];
        for (var s = 0; s < batch.Count; s++)
        {
            var length = model.Table.LengthOf(batch[s]);
            var pages = model.Table.PagesOf(batch[s]);
            var seqQ = queries[s].Length / (headsQ * d);
            var (o, lse) = (new double[queries[s].Length], new double[headsQ * seqQ]);
            var sequencePages = (length + ps - 1) / ps;
            var group = headsQ / hkv;
            var ranges = new Dictionary<(int KvHead, int Tile), (int First, int Count)>();
            for (var hq = 0; hq < headsQ; hq++)
            {
                var kvHead = hq / group;
                for (var i = 0; i < seqQ; i++)
                {
                    var q = queries[s].AsSpan((hq * seqQ + i) * d, d).ToArray();
                    var (codes, qScale) = QuantizeRow(q);
                    var row = new Row(s, hq, length - seqQ + i, Math.Min(length, length - seqQ + i + 1), modifiers);
                    var parts = new List<(double Lse, double[] O)>();
                    // The kernel's block for this row: (KV head, 16-row tile of the (token, head of the group) rows).
                    var tile = (i * group + hq % group) / 16;
                    if (!ranges.TryGetValue((kvHead, tile), out var range))
                    {
                        range = ranges[(kvHead, tile)] = modifiers?.Mask is { } mask ? MaskRange(mask, s, length, seqQ, group, kvHead, tile, ps) : (0, sequencePages);
                    }
                    for (var split = 0; split < splits; split++)
                    {
                        var (first, end) = (range.First + (int)((long)split * range.Count / splits), range.First + (int)((long)(split + 1) * range.Count / splits));
                        var mySteps = Enumerable.Range(first * steps, Math.Max(0, end - first) * steps);
                        var states = Enumerable.Range(0, warps).Select(w => Warp(model, pages, kvHead, q, codes, qScale, scale, row, stageKeys,
                            mySteps.Where(u => (u - first * steps) % warps == w))).ToList();
                        parts.Add(MergeWarps(states, d));
                    }
                    var (rowLse, rowO) = MergeSplits(parts, d);
                    lse[hq * seqQ + i] = rowLse;
                    rowO.CopyTo(o.AsSpan((hq * seqQ + i) * d, d));
                }
            }
            results[s] = new Float64AttentionResult(o, lse);
        }
        return results;
    }

    /// <summary>
    /// A query row as the modifiers see it: sequence <paramref name="Batch"/> of the batch, query head <paramref name="Head"/>,
    /// its position in the cache; keys at or past <paramref name="Limit"/> are causally hidden.
    /// </summary>
    private sealed record Row(int Batch, int Head, int Position, int Limit, AttentionModifiers? Modifiers)
    {
        public bool Hides(int key) => key >= Limit || (Modifiers?.Mask is { } mask && !mask(Batch, Head, Position, key));
    }

    /// <summary>
    /// The pages a masked tile visits, as the kernel finds them: from the first to the last page, below the tile's last
    /// causal key, where the mask shows some key below the length to some row of the tile. The kernel's block classifier
    /// bounds the mask over the tile's tokens × the page's keys (or per row where the mask reads h), exactly the pairs
    /// enumerated here, so the two ranges agree wherever the classifier is exact (a sliding window: linear in q − k).
    /// </summary>
    private static (int First, int Count) MaskRange(MaskModifier mask, int b, int length, int seqQ, int group, int kvHead, int tile, int ps)
    {
        var packed = seqQ * group;
        var rows = Enumerable.Range(tile * 16, Math.Min(16, packed - tile * 16)).Select(p => (Q: length - seqQ + p / group, H: kvHead * group + p % group)).ToList();
        var causalPages = Math.Min((length + ps - 1) / ps, rows[^1].Q / ps + 1);
        var (first, last) = (-1, -1);
        for (var page = 0; page < causalPages; page++)
        {
            var keys = Enumerable.Range(page * ps, Math.Min(ps, length - page * ps));
            if (rows.Any(r => keys.Any(k => mask(b, r.H, r.Q, k))))
            {
                first = first < 0 ? page : first;
                last = page;
            }
        }
        return first < 0 ? (0, 0) : (first, last + 1 - first);
    }

    /// <summary>A query row's int8 codes and scale, as the kernel's quantize helpers round them.</summary>
    private static (int[] Codes, float Scale) QuantizeRow(ReadOnlySpan<double> q)
    {
        var amax = 0f;
        foreach (var x in q)
        {
            amax = QuantizeReference.CudaMax(amax, MathF.Abs((float)x));
        }
        var scale = QuantizeReference.ScaleOf(amax);
        var inverse = QuantizeReference.InverseOf(scale);
        var codes = new int[q.Length];
        for (var c = 0; c < q.Length; c++)
        {
            codes[c] = QuantizeReference.Quant((float)q[c], inverse);
        }
        return (codes, scale);
    }

    /// <summary>
    /// One warp's online softmax over its steps (<paramref name="stageKeys"/> keys of a page each; step u is part u % (page /
    /// stageKeys) of page u / (page / stageKeys)): running max m (log2 units), sum l and O, both in units of 255·P. The scores
    /// are scaled by <paramref name="scale"/>: σ·log₂e, or σ where a score modifier takes the natural-log score.
    /// </summary>
    private static (double M, double L, double[] O) Warp(KvCacheModel model, IReadOnlyList<int> pages, int kvHead, double[] q, int[] codes, float qScale,
        float scale, Row row, int stageKeys, IEnumerable<int> mine)
    {
        var (d, ps, hkv) = (model.HeadDim, model.PageSize, model.HeadsKv);
        var (m, l, o) = (double.NegativeInfinity, 0.0, new double[d]);
        var x = new double[ps];
        var n = new double[ps];
        var steps = ps / stageKeys;
        foreach (var step in mine)
        {
            var (page, firstKey) = (step / steps, step % steps * stageKeys);
            var pageHead = (long)pages[page] * hkv + kvHead;
            double qm = 0;
            for (var c = 0; c < d; c++)
            {
                qm += q[c] * model.KMean[pageHead * d + c];
            }
            var a = qScale * scale * (double)model.KScale[pageHead];
            var score = row.Modifiers?.Score;
            var top = double.NegativeInfinity;
            for (var key = firstKey; key < firstKey + stageKeys; key++)
            {
                long dot = 0;
                for (var c = 0; c < d; c++)
                {
                    dot += codes[c] * model.KCodes[(pageHead * ps + key) * d + c];
                }
                var position = page * ps + key;
                x[key] = row.Hides(position) ? double.NegativeInfinity
                    : score is null ? dot * a + qm * scale
                    : score((float)(dot * a + qm * scale), row.Batch, row.Head, row.Position, position) * 1.4426950408889634;
                top = Math.Max(top, x[key]);
            }
            var mNew = Math.Max(m, top);
            var safe = double.IsNegativeInfinity(mNew) ? 0 : mNew;
            var alpha = Math.Pow(2, m - safe);
            (m, l) = (mNew, l * alpha);
            for (var c = 0; c < d; c++)
            {
                o[c] *= alpha;
            }
            for (var key = firstKey; key < firstKey + stageKeys; key++)
            {
                // The kernel's pack: 255·2^(x − m) to f16, then to the nearest integer.
                n[key] = Math.Round((double)(Half)(PScale * Math.Pow(2, x[key] - safe)), MidpointRounding.ToEven);
                l += n[key];
            }
            for (var c = 0; c < d; c++)
            {
                long pv = 0;
                for (var key = firstKey; key < firstKey + stageKeys; key++)
                {
                    pv += (long)n[key] * model.VCodes[(pageHead * ps + key) * d + c];
                }
                o[c] += pv * (double)model.VScale[pageHead * d + c];
            }
        }
        return (m, l, o);
    }

    /// <summary>The block's merge of its warps: a split's normalized O and natural-log LSE.</summary>
    private static (double Lse, double[] O) MergeWarps(List<(double M, double L, double[] O)> warps, int d)
    {
        var top = warps.Max(w => w.M);
        var (sum, o) = (0.0, new double[d]);
        foreach (var (m, l, wo) in warps.Where(w => !double.IsNegativeInfinity(w.M)))
        {
            var weight = Math.Pow(2, m - top);
            sum += l * weight;
            for (var c = 0; c < d; c++)
            {
                o[c] += wo[c] * weight;
            }
        }
        if (sum <= 0)
        {
            return (double.NegativeInfinity, o);
        }
        for (var c = 0; c < d; c++)
        {
            o[c] /= sum;
        }
        return ((top + Math.Log2(sum / PScale)) * Math.Log(2), o);
    }

    /// <summary>The merge kernel: splits weighted by exp(lse − max).</summary>
    private static (double Lse, double[] O) MergeSplits(List<(double Lse, double[] O)> parts, int d)
    {
        var top = parts.Max(p => p.Lse);
        var o = new double[d];
        if (double.IsNegativeInfinity(top))
        {
            return (top, o);
        }
        var sum = 0.0;
        foreach (var (lse, po) in parts.Where(p => !double.IsNegativeInfinity(p.Lse)))
        {
            var weight = Math.Exp(lse - top);
            sum += weight;
            for (var c = 0; c < d; c++)
            {
                o[c] += weight * po[c];
            }
        }
        for (var c = 0; c < d; c++)
        {
            o[c] /= sum;
        }
        return (top + Math.Log(sum), o);
    }
}
