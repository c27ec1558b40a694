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
        /// <summary>The last <see cref="Rent"/> that listed it: a second mention in the same batch is a duplicate.</summary>
        public long Mark { get; set; }
    }

    private long _mark;  // long: an int would wrap after 2³² batches and then match a sequence's initial 0

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
        using var rows = Rent(batch);
        return (rows.Table.ToArray(), rows.Pages, rows.Lengths.ToArray());
    }

    /// <summary>
    /// <see cref="Table"/> in arrays lent by the shared pool, for the cache's own launches, which copy it and give it back:
    /// a decode step of 64 sequences at 32k tokens would otherwise allocate a 128 KB table (on the large-object heap) per call.
    /// </summary>
    internal RentedRows Rent(IReadOnlyList<int> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var mark = ++_mark;
        var width = 0;
        foreach (var id in batch)
        {
            var owner = Get(id, nameof(batch));
            if (owner.Mark == mark)
            {
                throw new ArgumentException($"A batch names each sequence once; sequence {id} is named twice.", nameof(batch));
            }
            owner.Mark = mark;
            width = Math.Max(width, owner.Pages.Count);
        }
        var rows = new RentedRows(checked(batch.Count * width), width, batch.Count);
        for (var r = 0; r < batch.Count; r++)
        {
            var owner = _sequences[batch[r]];
            var row = rows.Row(r);
            var pages = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(owner.Pages);
            pages.CopyTo(row);
            row[pages.Length..].Fill(-1);
            rows.SetLength(r, owner.Length);
        }
        return rows;
    }

    private int PagesFor(int tokens) => (int)(((long)tokens + PageSize - 1) / PageSize);

    private Sequence Get(int sequence, string parameter = "sequence") =>
        _sequences.TryGetValue(sequence, out var owner)
            ? owner
            : throw new ArgumentException($"No live sequence {sequence} in this cache (AddSequence makes one; Free ends it).", parameter);
}

/// <summary>A batch's page table ([rows][Pages], −1 past a row's pages) and lengths, in arrays lent by the shared pool.</summary>
internal readonly struct RentedRows(int cells, int pages, int rows) : IDisposable
{
    private readonly KernelDsl.Launching.PooledInts _table = new(cells), _lengths = new(rows);

    public int Pages => pages;
    public ReadOnlySpan<int> Table => _table.Span;
    public ReadOnlySpan<int> Lengths => _lengths.Span;
    internal Span<int> Row(int row) => _table.Writable.Slice(row * pages, pages);
    internal void SetLength(int row, int length) => _lengths.Writable[row] = length;

    public void Dispose()
    {
        _table.Dispose();
        _lengths.Dispose();
    }
}
