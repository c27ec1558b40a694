namespace KernelDsl.Attention.ContextParallel;

/// <summary>How <see cref="SequencePartition"/> cuts a sequence among ranks.</summary>
public enum SequenceSplit
{
    /// <summary>
    /// N chunks, rank r holding chunk r. Balanced without a causal mask; with one, rank r sees only the K/V of ranks ≤ r,
    /// so rank N − 1 computes at every ring step while rank 0 idles after the first.
    /// </summary>
    Contiguous = 0,
    /// <summary>
    /// 2N chunks, rank r holding chunks r and 2N − 1 − r (the zig-zag split of Llama 3's context parallelism): under a
    /// causal mask every rank computes about the same number of scores at every ring step.
    /// </summary>
    ZigZag = 1,
}

/// <summary>Tokens [Start, Start + Length) of a sequence.</summary>
public readonly record struct TokenRange(int Start, int Length)
{
    public int End => Start + Length;

    public bool Contains(int token) => token >= Start && token < End;

    public Range ToRange() => Start..End;

    public override string ToString() => $"[{Start}, {End})";
}

/// <summary>
/// Which tokens of a sequence each of <see cref="Ranks"/> ranks holds, for Q and for K/V alike (self-attention). The
/// sequence is cut into <see cref="ChunkCount"/> contiguous chunks of near-equal length, the first Tokens mod ChunkCount
/// one token longer (as numpy's array_split). A rank holds its chunks in increasing order, back to back: its local
/// token i is the i-th of its chunks' tokens, so local order is global order and a causal mask on a rank's own Q and
/// K/V is the ordinary causal mask on its local tensors.
/// </summary>
public sealed record SequencePartition
{
    public SequencePartition(int ranks, int tokens, SequenceSplit split)
    {
        if (ranks < 1)
        {
            throw new ArgumentException($"ranks must be at least 1, got {ranks}.", nameof(ranks));
        }
        if (!Enum.IsDefined(split))
        {
            throw new ArgumentException($"split must be Contiguous or ZigZag, got {split}.", nameof(split));
        }
        var chunks = split == SequenceSplit.ZigZag ? 2L * ranks : ranks;
        // Every chunk holds a token: the kernels take no empty tensor, and an empty chunk would leave a rank without rows.
        if (tokens < chunks)
        {
            throw new ArgumentException(
                $"tokens ({tokens}) must be at least the number of chunks ({chunks}: {(split == SequenceSplit.ZigZag ? "2 per rank for the zig-zag split" : "1 per rank")}).",
                nameof(tokens));
        }
        (Ranks, Tokens, Split) = (ranks, tokens, split);
    }

    public int Ranks { get; }
    public int Tokens { get; }
    public SequenceSplit Split { get; }

    public int ChunkCount => Split == SequenceSplit.ZigZag ? 2 * Ranks : Ranks;

    /// <summary>The tokens of chunk <paramref name="chunk"/>, in global positions.</summary>
    public TokenRange Chunk(int chunk)
    {
        CheckIndex(chunk, ChunkCount, nameof(chunk));
        var (size, longer) = Math.DivRem(Tokens, ChunkCount);
        return new TokenRange(chunk * size + Math.Min(chunk, longer), size + (chunk < longer ? 1 : 0));
    }

    /// <summary>The chunks rank <paramref name="rank"/> holds, in increasing order (its local order).</summary>
    public int[] ChunksOf(int rank)
    {
        CheckIndex(rank, Ranks, nameof(rank));
        return Split == SequenceSplit.ZigZag ? [rank, 2 * Ranks - 1 - rank] : [rank];
    }

    /// <summary>The rank that holds chunk <paramref name="chunk"/>.</summary>
    public int OwnerOf(int chunk)
    {
        CheckIndex(chunk, ChunkCount, nameof(chunk));
        return chunk < Ranks ? chunk : 2 * Ranks - 1 - chunk;
    }

    /// <summary>How many tokens rank <paramref name="rank"/> holds.</summary>
    public int LocalTokens(int rank) => ChunksOf(rank).Sum(c => Chunk(c).Length);

    /// <summary>Where chunk <paramref name="chunk"/> lies among its owner's local tokens.</summary>
    public TokenRange LocalRange(int chunk)
    {
        var start = 0;
        foreach (var held in ChunksOf(OwnerOf(chunk)))
        {
            if (held == chunk)
            {
                return new TokenRange(start, Chunk(chunk).Length);
            }
            start += Chunk(held).Length;
        }
        throw new InvalidOperationException($"Chunk {chunk} is not among the chunks of its owner {OwnerOf(chunk)}.");
    }

    /// <summary>The global ranges a rank holds, in its local order.</summary>
    public TokenRange[] RangesOf(int rank) => ChunksOf(rank).Select(Chunk).ToArray();

    private static void CheckIndex(int value, int count, string name)
    {
        if (value < 0 || value >= count)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be in [0, {count}).");
        }
    }
}
