namespace KernelDsl.Attention.ContextParallel;

/// <summary>Heads [Start, Start + Count) of a tensor.</summary>
public readonly record struct HeadRange(int Start, int Count)
{
    public int End => Start + Count;

    public override string ToString() => $"[{Start}, {End})";
}

/// <summary>
/// DeepSpeed-Ulysses: the alternative to the ring when the heads divide among the ranks. An all-to-all turns the
/// sequence shards of Q, K and V (every head, a rank's tokens of <see cref="Partition"/>) into head shards (every token
/// in global order, HeadsQ / N query heads and HeadsKv / N key/value heads), each rank attends its heads over the whole
/// sequence with one ordinary call (causal or not, no merge), and a second all-to-all brings O and the LSE back to
/// sequence shards. Rank t's query heads read exactly its key/value heads (head h reads h / (HeadsQ / HeadsKv)), so GQA
/// needs nothing more. Each all-to-all moves the piece (tokens of rank r, heads of rank t) from r to t; pieces differ in
/// size when the tokens do not divide evenly, hence grouped send/receive rather than an equal-count collective.
/// </summary>
public sealed record UlyssesLayout
{
    public UlyssesLayout(SequencePartition partition, int headsQ, int headsKv)
    {
        ArgumentNullException.ThrowIfNull(partition);
        var ranks = partition.Ranks;
        if (headsQ < 1 || headsKv < 1 || headsQ % headsKv != 0)
        {
            throw new ArgumentException($"headsQ ({headsQ}) must be a positive whole multiple of headsKv ({headsKv}).", nameof(headsKv));
        }
        if (headsQ % ranks != 0)
        {
            throw new ArgumentException($"headsQ ({headsQ}) must divide among the {ranks} ranks for Ulysses (each attends whole heads); use the ring instead.", nameof(headsQ));
        }
        // Splitting fewer K/V heads than ranks would replicate them; that is not built.
        if (headsKv % ranks != 0)
        {
            throw new ArgumentException($"headsKv ({headsKv}) must divide among the {ranks} ranks for Ulysses (each holds whole K/V heads); use the ring instead.", nameof(headsKv));
        }
        (Partition, HeadsQ, HeadsKv) = (partition, headsQ, headsKv);
    }

    public SequencePartition Partition { get; }
    public int HeadsQ { get; }
    public int HeadsKv { get; }

    public int Ranks => Partition.Ranks;

    /// <summary>The query heads rank <paramref name="rank"/> attends after the first all-to-all.</summary>
    public HeadRange QHeads(int rank) => Heads(rank, HeadsQ);

    /// <summary>The key/value heads rank <paramref name="rank"/> holds after the first all-to-all: those its query heads read.</summary>
    public HeadRange KvHeads(int rank) => Heads(rank, HeadsKv);

    private HeadRange Heads(int rank, int heads)
    {
        if (rank < 0 || rank >= Ranks)
        {
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {Ranks}).");
        }
        var perRank = heads / Ranks;
        return new HeadRange(rank * perRank, perRank);
    }
}
