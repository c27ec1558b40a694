namespace KernelDsl.Attention.ContextParallel;

/// <summary>What a (Q chunk, K/V chunk) block of the attention matrix needs.</summary>
public enum BlockVisibility
{
    /// <summary>Every query of the Q chunk sees every key of the K/V chunk: a non-causal call on the two chunks.</summary>
    Full = 0,
    /// <summary>
    /// The chunk against itself under a causal mask: a causal call whose queries and keys are the same tokens, so the
    /// diagonal is the main one and the kernels' bottom-right alignment (row i sees keys ≤ i + Sk − Sq) is exact.
    /// </summary>
    CausalDiagonal = 1,
    /// <summary>Every key of the K/V chunk lies after every query of the Q chunk (causal): nothing to compute.</summary>
    Skipped = 2,
}

/// <summary>One block of the attention matrix a rank meets at a ring step.</summary>
public readonly record struct ChunkBlock(int QChunk, int KvChunk, BlockVisibility Visibility)
{
    public bool Computed => Visibility != BlockVisibility.Skipped;
}

/// <summary>
/// Ring attention over a <see cref="SequencePartition"/>: each rank keeps its Q chunks; the K/V chunks, quantized once by
/// their owner, travel around the ring, rank r sending to r + 1 and receiving from r − 1, so at step t rank r holds the
/// K/V of rank r − t (mod N) and attends its Q chunks to them block by block. After <see cref="Steps"/> steps every
/// rank has met every K/V chunk once; its partial results per Q chunk merge by their LSE. Causal attention needs
/// TokensQ = TokensKv, which one partition of one sequence implies.
/// <para>
/// Every computed block is one kernel call on whole chunks (<see cref="BlockVisibility"/>): the attention kernels take
/// tensors from the start of a buffer and K's codes densely packed, so a call cannot start inside a rank's local
/// tensors, and a causal call can only put the diagonal where bottom-right alignment puts it. A block is either fully
/// visible or a chunk against itself, which is why chunks, not ranks' local ranges, are the unit of work.
/// </para>
/// </summary>
public sealed record RingSchedule(SequencePartition Partition, bool Causal)
{
    public SequencePartition Partition { get; } = Partition ?? throw new ArgumentNullException(nameof(Partition));

    public int Ranks => Partition.Ranks;

    /// <summary>Ring steps: one per K/V shard; N − 1 transfers per rank.</summary>
    public int Steps => Ranks;

    public int SendsTo(int rank) => (CheckRank(rank) + 1) % Ranks;

    public int ReceivesFrom(int rank) => (CheckRank(rank) + Ranks - 1) % Ranks;

    /// <summary>The rank whose K/V <paramref name="rank"/> holds at <paramref name="step"/>: its own at step 0, then one hop further back each step.</summary>
    public int KvSource(int rank, int step)
    {
        CheckRank(rank);
        if (step < 0 || step >= Steps)
        {
            throw new ArgumentOutOfRangeException(nameof(step), step, $"step must be in [0, {Steps}).");
        }
        return (rank - step + Ranks) % Ranks;
    }

    /// <summary>Whether queries of <paramref name="qChunk"/> see keys of <paramref name="kvChunk"/>: chunks are in token order.</summary>
    public BlockVisibility Classify(int qChunk, int kvChunk) =>
        !Causal || kvChunk < qChunk ? BlockVisibility.Full
        : kvChunk == qChunk ? BlockVisibility.CausalDiagonal
        : BlockVisibility.Skipped;

    /// <summary>Every block rank <paramref name="rank"/> meets at <paramref name="step"/>, skipped ones included: its Q chunks by the K/V chunks it then holds, both in local order.</summary>
    public ChunkBlock[] Blocks(int rank, int step) =>
        (from q in Partition.ChunksOf(rank)
         from kv in Partition.ChunksOf(KvSource(rank, step))
         select new ChunkBlock(q, kv, Classify(q, kv))).ToArray();

    /// <summary>The (query, key) scores the unmasked ones among rank's blocks at step hold: the work that step gives it.</summary>
    public long VisibleScores(int rank, int step) => Blocks(rank, step).Sum(VisibleScores);

    public long VisibleScores(ChunkBlock block)
    {
        long q = Partition.Chunk(block.QChunk).Length, k = Partition.Chunk(block.KvChunk).Length;
        return block.Visibility switch
        {
            BlockVisibility.Full => q * k,
            BlockVisibility.CausalDiagonal => q * (q + 1) / 2,
            _ => 0,
        };
    }

    private int CheckRank(int rank)
    {
        if (rank < 0 || rank >= Ranks)
        {
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {Ranks}).");
        }
        return rank;
    }
}
