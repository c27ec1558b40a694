namespace KernelDsl.Attention.KvCache;

/// <summary>
/// The bookkeeping of a paged KV cache (issue 16): a pool of fixed-size pages, the pages each sequence owns in order, and
/// each sequence's length. Appending tokens takes free pages as a sequence grows; freeing a sequence returns its pages.
/// The device side stores each page's K and V codes, scales and K mean (docs/KV_CACHE.md) at the page numbers handed out
/// here, and a kernel reads <see cref="Table"/>: int32 [sequences][pages], the same layout as FlashInfer's and vLLM's
/// block tables. Every page in it belongs to its row's sequence and to no other, by construction, so a kernel that stays
/// within a row's <see cref="LengthOf"/> tokens reads only that sequence's pages.
/// Every refusal happens before any change, so a failed call leaves the table as it was. Not thread-safe.
/// </summary>
public sealed class KvPageTable
{
    private readonly Stack<int> _free;
    private readonly Dictionary<int, Sequence> _sequences = [];
    private int _nextId;

    private sealed class Sequence
    {
        public List<int> Pages { get; } = [];
        public int Length { get; set; }
    }

    /// <param name="pages">Pages in the pool, numbered 0 to pages − 1.</param>
    /// <param name="pageSize">Tokens per page: the K scale granularity of the kernels that read the cache (64).</param>
    public KvPageTable(int pages, int pageSize = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        (Capacity, PageSize) = (pages, pageSize);
        // Lowest page numbers first: a fresh table fills the pool from its start.
        _free = new Stack<int>(Enumerable.Range(0, pages).Reverse());
    }

    public int Capacity { get; }
    public int PageSize { get; }
    public int FreePages => _free.Count;

    /// <summary>The live sequences, in the order they were added.</summary>
    public IReadOnlyList<int> Sequences => _sequences.Keys.Order().ToArray();

    /// <summary>Starts an empty sequence and returns its id.</summary>
    public int AddSequence()
    {
        var id = _nextId++;
        _sequences.Add(id, new Sequence());
        return id;
    }

    /// <summary>Extends <paramref name="sequence"/> by <paramref name="tokens"/> tokens, taking the pages it needs.</summary>
    /// <returns>The first new token's position in the sequence (its old length).</returns>
    /// <exception cref="InvalidOperationException">The pool lacks the free pages; nothing changed.</exception>
    public int Append(int sequence, int tokens)
    {
        var owner = Get(sequence);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var length = (long)owner.Length + tokens;
        if (length > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"sequence {sequence} would hold {length} tokens; a sequence holds at most {int.MaxValue}.");
        }
        var needed = PagesFor((int)length) - owner.Pages.Count;
        if (needed > _free.Count)
        {
            throw new InvalidOperationException($"Appending {tokens} tokens to sequence {sequence} needs {needed} more pages of {PageSize} tokens; " +
                $"{_free.Count} of {Capacity} are free. Free a sequence or create the cache with more pages.");
        }
        for (var i = 0; i < needed; i++)
        {
            owner.Pages.Add(_free.Pop());
        }
        var first = owner.Length;
        owner.Length = (int)length;
        return first;
    }

    /// <summary>Ends <paramref name="sequence"/> and returns its pages to the pool.</summary>
    public void Free(int sequence)
    {
        var owner = Get(sequence);
        // Returned in reverse, so the sequence's first page is the next one handed out.
        for (var i = owner.Pages.Count - 1; i >= 0; i--)
        {
            _free.Push(owner.Pages[i]);
        }
        _sequences.Remove(sequence);
    }

    public int LengthOf(int sequence) => Get(sequence).Length;

    public IReadOnlyList<int> PagesOf(int sequence) => Get(sequence).Pages.AsReadOnly();

    /// <summary>Where token <paramref name="token"/> of <paramref name="sequence"/> lives: its page and the slot in it.</summary>
    public (int Page, int Slot) Locate(int sequence, int token)
    {
        var owner = Get(sequence);
        if (token < 0 || token >= owner.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, $"sequence {sequence} holds tokens 0 to {owner.Length - 1}.");
        }
        return (owner.Pages[token / PageSize], token % PageSize);
    }

    /// <summary>
    /// The int32 page table of a batch: row r lists the pages of <paramref name="batch"/>[r] in order, padded with −1 to
    /// the longest row, and <c>Lengths</c>[r] is its length in tokens.
    /// </summary>
    public (int[] Table, int Pages, int[] Lengths) Table(IReadOnlyList<int> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var owners = batch.Select(s => Get(s, nameof(batch))).ToArray();
        if (batch.Distinct().Count() != batch.Count)
        {
            throw new ArgumentException("A batch names each sequence once.", nameof(batch));
        }
        var width = owners.Length == 0 ? 0 : owners.Max(o => o.Pages.Count);
        var table = new int[owners.Length * width];
        Array.Fill(table, -1);
        for (var r = 0; r < owners.Length; r++)
        {
            owners[r].Pages.CopyTo(table, r * width);
        }
        return (table, width, owners.Select(o => o.Length).ToArray());
    }

    private int PagesFor(int tokens) => (int)(((long)tokens + PageSize - 1) / PageSize);

    private Sequence Get(int sequence, string parameter = "sequence") =>
        _sequences.TryGetValue(sequence, out var owner)
            ? owner
            : throw new ArgumentException($"No live sequence {sequence} in this cache (AddSequence makes one; Free ends it).", parameter);
}
