namespace KernelDsl.Attention.KvCache;

/// <summary>
/// The bookkeeping a paged KV cache needs beyond its <see cref="KvPageTable"/>: each live sequence's staging slot (where
/// the originals of its last, partial page are kept), and appends to a batch of sequences that happen all or not at all.
/// Shared by the device cache (<see cref="PagedKvCache"/>) and its CPU model (<see cref="KvCacheModel"/>). Not thread-safe.
/// </summary>
public sealed class KvSequences
{
    private readonly Dictionary<int, int> _slotOf = [];
    private readonly SortedSet<int> _freeSlots;

    public KvSequences(int pages, int slots, int pageSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        Table = new KvPageTable(pages, pageSize);
        Slots = slots;
        _freeSlots = new SortedSet<int>(Enumerable.Range(0, slots));
    }

    public KvPageTable Table { get; }
    public int Slots { get; }

    /// <summary>Starts an empty sequence in the lowest free staging slot and returns its id.</summary>
    public int AddSequence()
    {
        if (_freeSlots.Count == 0)
        {
            throw new InvalidOperationException($"All {Slots} sequence slots are in use: free a sequence or create the cache with more sequences.");
        }
        var id = Table.AddSequence();
        _slotOf[id] = _freeSlots.Min;
        _freeSlots.Remove(_freeSlots.Min);
        return id;
    }

    public int SlotOf(int sequence) => _slotOf.TryGetValue(sequence, out var slot) ? slot
        : throw new ArgumentException($"No live sequence {sequence} in this cache (AddSequence makes one; Free ends it).", nameof(sequence));

    /// <summary>Ends <paramref name="sequence"/>: its pages and its slot are free again.</summary>
    public void Free(int sequence)
    {
        var slot = SlotOf(sequence);
        Table.Free(sequence);
        _slotOf.Remove(sequence);
        _freeSlots.Add(slot);
    }

    /// <summary>
    /// Extends each sequence of <paramref name="batch"/> by its <paramref name="newTokens"/> entry, taking the pages they need,
    /// all or none: every refusal (an unknown or repeated sequence, a negative count, too few free pages) comes before any change.
    /// </summary>
    /// <returns>Each sequence's length before the append.</returns>
    public int[] Append(IReadOnlyList<int> batch, IReadOnlyList<int> newTokens)
    {
        var lengths = Check(batch, newTokens);
        for (var i = 0; i < batch.Count; i++)
        {
            Table.Append(batch[i], newTokens[i]);
        }
        return lengths;
    }

    /// <summary>
    /// Every refusal <see cref="Append"/> would make, changing nothing: for a cache that checks the new values (a wait for the
    /// device) only once the batch is known to fit.
    /// </summary>
    /// <returns>Each sequence's length.</returns>
    public int[] Check(IReadOnlyList<int> batch, IReadOnlyList<int> newTokens)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(newTokens);
        if (batch.Count == 0)
        {
            throw new ArgumentException("An append names at least one sequence.", nameof(batch));
        }
        if (newTokens.Count != batch.Count)
        {
            throw new ArgumentException($"newTokens has {newTokens.Count} counts for {batch.Count} sequences.", nameof(newTokens));
        }
        var seen = new HashSet<int>();
        long needed = 0;
        var lengths = new int[batch.Count];
        for (var i = 0; i < batch.Count; i++)
        {
            SlotOf(batch[i]);
            if (!seen.Add(batch[i]))
            {
                throw new ArgumentException($"Sequence {batch[i]} appears twice in one append: give it all its new tokens once.", nameof(batch));
            }
            if (newTokens[i] < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(newTokens), newTokens[i], $"newTokens[{i}] is negative.");
            }
            lengths[i] = Table.LengthOf(batch[i]);
            var length = (long)lengths[i] + newTokens[i];
            if (length > int.MaxValue)
            {
                throw new ArgumentOutOfRangeException(nameof(newTokens), newTokens[i], $"sequence {batch[i]} would hold {length} tokens; a sequence holds at most {int.MaxValue}.");
            }
            needed += PagesFor(length) - Table.PagesOf(batch[i]).Count;
        }
        if (needed > Table.FreePages)
        {
            throw new InvalidOperationException($"This append needs {needed} more pages of {Table.PageSize} tokens; {Table.FreePages} of {Table.Capacity} are free. " +
                "Free a sequence or create the cache with more pages.");
        }
        return lengths;
    }

    private long PagesFor(long tokens) => (tokens + Table.PageSize - 1) / Table.PageSize;
}
