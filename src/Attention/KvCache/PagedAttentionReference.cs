using KernelDsl.Attention.Reference;

namespace KernelDsl.Attention.KvCache;

/// <summary>
/// Float64 attention for a batch of sequences whose K and V live in the pages of a <see cref="KvPageTable"/>: the oracle
/// a decode or chunked-prefill kernel over the paged cache is checked against (issue 16). Pages are stored
/// [page][Hkv][PageSize][D] (one page's tokens of one head contiguous, as BHSD is per head). Each sequence's keys are
/// gathered from its pages in order, then <see cref="Float64Attention"/> runs on them, so the two cannot disagree about
/// the attention itself; what this adds is the page addressing, which a kernel must reproduce.
/// </summary>
public static class PagedAttentionReference
{
    /// <summary>
    /// O and LSE of each sequence of <paramref name="batch"/>: <paramref name="queries"/>[i] is sequence i's
    /// [Hq][Sq_i][D] (Sq_i from 1 to any length; causal is bottom-right, the queries being the last Sq_i positions),
    /// attending to all <see cref="KvPageTable.LengthOf"/> tokens of its pages. <paramref name="modifiers"/> see what the paged
    /// decode kernel gives them: q and k as positions in the sequence (query i of Sq_i is at length − Sq_i + i), b as the
    /// sequence's index in <paramref name="batch"/>.
    /// </summary>
    public static IReadOnlyList<Float64AttentionResult> Forward(KvPageTable table, IReadOnlyList<int> batch, IReadOnlyList<double[]> queries,
        double[] kPages, double[] vPages, int headsQ, int headsKv, int headDim, bool causal = false, double? softmaxScale = null,
        AttentionModifiers? modifiers = null)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(queries);
        if (queries.Count != batch.Count)
        {
            throw new ArgumentException($"queries has {queries.Count} entries for {batch.Count} sequences in batch.", nameof(queries));
        }
        var pageElements = (long)headsKv * table.PageSize * headDim;
        Holds(kPages, table.Capacity * pageElements, nameof(kPages));
        Holds(vPages, table.Capacity * pageElements, nameof(vPages));
        var results = new Float64AttentionResult[batch.Count];
        for (var i = 0; i < batch.Count; i++)
        {
            var length = table.LengthOf(batch[i]);
            if (queries[i] is null || queries[i].Length % (headsQ * headDim) != 0)
            {
                throw new ArgumentException($"queries[{i}] must be [Hq = {headsQ}][Sq ≥ 0][D = {headDim}]; it has {queries[i]?.Length ?? 0} values.", nameof(queries));
            }
            if (queries[i].Length == 0)
            {
                // A sequence with no query in a batch of chunks: nothing to attend, but it keeps its index b for the modifiers.
                results[i] = new Float64AttentionResult([], []);
                continue;
            }
            if (length == 0)
            {
                throw new ArgumentException($"sequence {batch[i]} holds no tokens yet: append before attending to it.", nameof(batch));
            }
            var shape = new AttentionShape(1, headsQ, headsKv, queries[i].Length / (headsQ * headDim), length, headDim, causal, softmaxScale);
            var (k, v) = (Gather(table, batch[i], kPages, headsKv, headDim), Gather(table, batch[i], vPages, headsKv, headDim));
            results[i] = Float64Attention.Forward(shape, queries[i], k, v, modifiers: InCache(modifiers, i, length - shape.TokensQ));
        }
        return results;
    }

    /// <summary>
    /// <paramref name="modifiers"/> for one sequence's own attention (b = 0, query i): called with b = <paramref name="sequence"/>,
    /// the query's position <paramref name="firstQuery"/> + i and the key's.
    /// </summary>
    public static AttentionModifiers? InCache(AttentionModifiers? modifiers, int sequence, int firstQuery) => modifiers is null ? null : new AttentionModifiers(
        modifiers.Score is { } score ? (s, _, h, q, k) => score(s, sequence, h, firstQuery + q, k) : null,
        modifiers.Mask is { } mask ? (_, h, q, k) => mask(sequence, h, firstQuery + q, k) : null);

    /// <summary>A sequence's tokens from its pages, as [Hkv][length][D].</summary>
    public static double[] Gather(KvPageTable table, int sequence, double[] pages, int headsKv, int headDim)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(pages);
        var length = table.LengthOf(sequence);
        var gathered = new double[(long)headsKv * length * headDim];
        for (var h = 0; h < headsKv; h++)
        {
            for (var t = 0; t < length; t++)
            {
                var (page, slot) = table.Locate(sequence, t);
                var from = ((long)(page * headsKv + h) * table.PageSize + slot) * headDim;
                Array.Copy(pages, from, gathered, ((long)h * length + t) * headDim, headDim);
            }
        }
        return gathered;
    }

    private static void Holds(double[] pages, long elements, string name)
    {
        ArgumentNullException.ThrowIfNull(pages, name);
        if (pages.LongLength < elements)
        {
            throw new ArgumentException($"{name} holds {pages.LongLength} values; the cache's pages need [pages][Hkv][PageSize][D] = {elements}.", name);
        }
    }
}
