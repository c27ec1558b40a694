using KernelDsl.Attention.ContextParallel;

namespace KernelDsl.Attention.Reference;

/// <summary>
/// Attention of one block of a context-parallel schedule: <paramref name="block"/> is its shape (the Q and K/V chunks'
/// lengths, causal for a chunk against itself), <paramref name="q"/>, <paramref name="k"/> and <paramref name="v"/> its
/// dense tensors in the shape's layout. Returns the block's output (laid out as q) and LSE.
/// </summary>
public delegate Float64AttentionResult BlockAttention(AttentionShape block, Half[] q, Half[] k, Half[] v);

/// <summary>
/// Context-parallel attention on the CPU, rank by rank and step by step as the schedules say, with the single-sequence
/// references for each block: the proof that the schedules and the LSE merge give the attention of the whole
/// sequence, and the ground truth the GPU's simulated ranks are held to. Results are in the global layout of the
/// shape, gathered from every rank's rows.
/// </summary>
public static class ContextParallelReference
{
    /// <summary>Each block in float64 (<see cref="Float64Attention"/>).</summary>
    public static BlockAttention Float64 { get; } = (block, q, k, v) => Float64Attention.Forward(block, q, k, v);

    /// <summary>
    /// Each block by the int8 algorithm (<see cref="Int8AttentionReference"/>), its f16 output and float32 LSE widened.
    /// It quantizes K and V per block; their codes depend on the K/V chunk alone, so this equals quantizing each
    /// chunk once and sending the codes around the ring, as the GPU does.
    /// </summary>
    public static BlockAttention Int8(Int8AttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return (block, q, k, v) =>
        {
            var result = Int8AttentionReference.Forward(block, q, k, v, options);
            return new Float64AttentionResult(result.OutputValues(), ErrorMetrics.Widen(result.Lse));
        };
    }

    /// <summary>
    /// Ring attention: for every rank and step, each computed block of <see cref="RingSchedule.Blocks"/> attends a Q
    /// chunk the rank holds to a K/V chunk it then holds; each Q chunk's partials (one per block) merge by LSE
    /// (<see cref="LseMerge"/>) into its rows of the result.
    /// </summary>
    public static Float64AttentionResult Ring(AttentionShape shape, RingSchedule schedule, ReadOnlySpan<Half> q, ReadOnlySpan<Half> k, ReadOnlySpan<Half> v,
        BlockAttention attend)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(attend);
        Check(shape, schedule.Partition, q, k, v);
        if (schedule.Causal != shape.Causal)
        {
            throw new ArgumentException($"The schedule is {(schedule.Causal ? "" : "not ")}causal and the shape is {(shape.Causal ? "" : "not ")}: they must agree.", nameof(schedule));
        }
        var partition = schedule.Partition;
        var chunks = Enumerable.Range(0, partition.ChunkCount).Select(partition.Chunk).ToArray();
        var (qChunks, kChunks, vChunks) = (Tokens(shape, q, chunks, query: true), Tokens(shape, k, chunks, query: false), Tokens(shape, v, chunks, query: false));
        var partials = chunks.Select(_ => new List<Float64AttentionResult>()).ToArray();
        for (var rank = 0; rank < schedule.Ranks; rank++)
        {
            for (var step = 0; step < schedule.Steps; step++)
            {
                foreach (var block in schedule.Blocks(rank, step).Where(b => b.Computed))
                {
                    var blockShape = Block(shape, chunks[block.QChunk].Length, chunks[block.KvChunk].Length, block.Visibility == BlockVisibility.CausalDiagonal);
                    partials[block.QChunk].Add(attend(blockShape, qChunks[block.QChunk], kChunks[block.KvChunk], vChunks[block.KvChunk]));
                }
            }
        }
        var result = new Float64AttentionResult(new double[shape.QElements], new double[shape.LseElements]);
        for (var c = 0; c < chunks.Length; c++)
        {
            var length = chunks[c].Length;
            var merged = LseMerge.Merge(Block(shape, length, length, causal: false), partials[c]);
            PlaceRows(shape, merged, result, ..shape.HeadsQ, chunks[c].ToRange());
        }
        return result;
    }

    /// <summary>
    /// Ulysses: the sequence → heads all-to-all (each rank's local tokens, in its chunks' order, sent to the rank of each
    /// head shard), one <paramref name="attend"/> call per rank on its heads over the whole sequence, and the heads →
    /// sequence all-to-all of O and the LSE back to the ranks that hold the tokens.
    /// </summary>
    public static Float64AttentionResult Ulysses(AttentionShape shape, UlyssesLayout layout, ReadOnlySpan<Half> q, ReadOnlySpan<Half> k, ReadOnlySpan<Half> v,
        BlockAttention attend)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(attend);
        Check(shape, layout.Partition, q, k, v);
        if (layout.HeadsQ != shape.HeadsQ || layout.HeadsKv != shape.HeadsKv)
        {
            throw new ArgumentException($"The layout splits {layout.HeadsQ} query and {layout.HeadsKv} K/V heads; the shape has {shape.HeadsQ} and {shape.HeadsKv}.", nameof(layout));
        }
        var partition = layout.Partition;
        // What each rank holds before: its tokens of every head.
        var ranks = Enumerable.Range(0, layout.Ranks).ToArray();
        var (qLocal, kLocal, vLocal) = (new Half[layout.Ranks][], new Half[layout.Ranks][], new Half[layout.Ranks][]);
        foreach (var r in ranks)
        {
            (qLocal[r], kLocal[r], vLocal[r]) = (Local(shape, q, partition, r, query: true), Local(shape, k, partition, r, query: false), Local(shape, v, partition, r, query: false));
        }
        var result = new Float64AttentionResult(new double[shape.QElements], new double[shape.LseElements]);
        foreach (var t in ranks)
        {
            var (qHeads, kvHeads) = (layout.QHeads(t), layout.KvHeads(t));
            var headShape = new AttentionShape(shape.Batch, qHeads.Count, kvHeads.Count, shape.TokensQ, shape.TokensKv, shape.HeadDim, shape.Causal, shape.SoftmaxScale, shape.Layout);
            var attended = attend(headShape, ToHeads(shape, partition, qLocal, shape.HeadsQ, qHeads), ToHeads(shape, partition, kLocal, shape.HeadsKv, kvHeads),
                ToHeads(shape, partition, vLocal, shape.HeadsKv, kvHeads));
            // The heads → sequence all-to-all lands each of rank t's rows with the rank that holds its token; gathered, the
            // rows lie where their heads and tokens do in the whole sequence.
            PlaceRows(shape, attended, result, qHeads.Start..qHeads.End, ..shape.TokensQ);
        }
        return result;
    }

    /// <summary>
    /// The sequence → heads all-to-all of one tensor: the <paramref name="shard"/> heads over the whole sequence, from each
    /// rank's piece (its local tokens of those heads) placed where its chunks lie.
    /// </summary>
    private static Half[] ToHeads(AttentionShape shape, SequencePartition partition, Half[][] local, int heads, HeadRange shard)
    {
        var (b, d) = (shape.Batch, shape.HeadDim);
        var result = new Half[b * shard.Count * partition.Tokens * d];
        for (var r = 0; r < partition.Ranks; r++)
        {
            foreach (var chunk in partition.ChunksOf(r))
            {
                var piece = AttentionTensors.Slice<Half>(local[r], b, heads, partition.LocalTokens(r), d, shape.Layout, shard.Start..shard.End, partition.LocalRange(chunk).ToRange());
                AttentionTensors.Place<Half>(piece, result, b, shard.Count, partition.Tokens, d, shape.Layout, .., partition.Chunk(chunk).ToRange());
            }
        }
        return result;
    }

    private static void Check(AttentionShape shape, SequencePartition partition, ReadOnlySpan<Half> q, ReadOnlySpan<Half> k, ReadOnlySpan<Half> v)
    {
        ArgumentNullException.ThrowIfNull(shape);
        shape.CheckLengths(q.Length, k.Length, v.Length);
        if (shape.TokensQ != shape.TokensKv || shape.TokensQ != partition.Tokens)
        {
            throw new ArgumentException($"Context parallelism splits one sequence: TokensQ ({shape.TokensQ}) and TokensKv ({shape.TokensKv}) must both be the partition's {partition.Tokens}.",
                nameof(shape));
        }
    }

    /// <summary>A block of the whole problem: its heads, head dim, scale and layout, these lengths and masking.</summary>
    private static AttentionShape Block(AttentionShape shape, int tokensQ, int tokensKv, bool causal) =>
        new(shape.Batch, shape.HeadsQ, shape.HeadsKv, tokensQ, tokensKv, shape.HeadDim, causal, shape.SoftmaxScale, shape.Layout);

    /// <summary>Each range's tokens of a Q-shaped (query) or K/V-shaped tensor, dense.</summary>
    private static Half[][] Tokens(AttentionShape shape, ReadOnlySpan<Half> tensor, TokenRange[] ranges, bool query)
    {
        var heads = query ? shape.HeadsQ : shape.HeadsKv;
        var result = new Half[ranges.Length][];
        for (var i = 0; i < ranges.Length; i++)
        {
            result[i] = AttentionTensors.Slice(tensor, shape.Batch, heads, shape.TokensQ, shape.HeadDim, shape.Layout, .., ranges[i].ToRange());
        }
        return result;
    }

    /// <summary>A rank's local tensor: its chunks' tokens back to back.</summary>
    private static Half[] Local(AttentionShape shape, ReadOnlySpan<Half> tensor, SequencePartition partition, int rank, bool query) =>
        Shard(tensor, shape.Batch, query ? shape.HeadsQ : shape.HeadsKv, shape.HeadDim, shape.Layout, partition, rank);

    /// <summary>
    /// Rank <paramref name="rank"/>'s tokens of a whole-sequence tensor [batch, heads, partition.Tokens, headDim] in
    /// <paramref name="layout"/> (an LSE: BHSD, headDim 1), its chunks back to back: what the rank holds.
    /// </summary>
    public static T[] Shard<T>(ReadOnlySpan<T> whole, int batch, int heads, int headDim, TensorLayout layout, SequencePartition partition, int rank)
    {
        ArgumentNullException.ThrowIfNull(partition);
        var local = new T[(long)batch * heads * partition.LocalTokens(rank) * headDim];
        foreach (var chunk in partition.ChunksOf(rank))
        {
            var part = AttentionTensors.Slice(whole, batch, heads, partition.Tokens, headDim, layout, .., partition.Chunk(chunk).ToRange());
            AttentionTensors.Place<T>(part, local, batch, heads, partition.LocalTokens(rank), headDim, layout, .., partition.LocalRange(chunk).ToRange());
        }
        return local;
    }

    /// <summary>The inverse of <see cref="Shard"/>: writes a rank's tokens (its chunks back to back) where they lie in the whole-sequence tensor.</summary>
    public static void Unshard<T>(ReadOnlySpan<T> shard, Span<T> whole, int batch, int heads, int headDim, TensorLayout layout, SequencePartition partition, int rank)
    {
        ArgumentNullException.ThrowIfNull(partition);
        foreach (var chunk in partition.ChunksOf(rank))
        {
            var part = AttentionTensors.Slice(shard, batch, heads, partition.LocalTokens(rank), headDim, layout, .., partition.LocalRange(chunk).ToRange());
            AttentionTensors.Place<T>(part, whole, batch, heads, partition.Tokens, headDim, layout, .., partition.Chunk(chunk).ToRange());
        }
    }

    /// <summary>Writes a result of <paramref name="heads"/> × <paramref name="tokens"/> (output laid out as Q, LSE [B][H][S]) into those rows of <paramref name="target"/>.</summary>
    private static void PlaceRows(AttentionShape shape, Float64AttentionResult part, Float64AttentionResult target, Range heads, Range tokens)
    {
        AttentionTensors.Place<double>(part.Output, target.Output, shape.Batch, shape.HeadsQ, shape.TokensQ, shape.HeadDim, shape.Layout, heads, tokens);
        AttentionTensors.Place<double>(part.Lse, target.Lse, shape.Batch, shape.HeadsQ, shape.TokensQ, 1, TensorLayout.BHSD, heads, tokens);
    }
}
