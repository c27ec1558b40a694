namespace KernelDsl.Launching;

/// <summary>
/// The host half of a generated paged decode launcher: checks a batch (query totals, lengths, page table) against the
/// cache's pages, and makes the device copy the kernel reads (the table's rows, the lengths, the query totals). The kernel
/// reads only the first ⌈length / pageSize⌉ entries of a row, so every page it could index is checked here, before
/// anything is queued. Decode only reads the cache, so two sequences may share a page (a common prefix); one row may not
/// list a page twice.
/// </summary>
public static class KvDecodeWork
{
    /// <summary>
    /// Ints of the device copy: <paramref name="batch"/> rows of <paramref name="tablePages"/>, one length per row, then the
    /// batch + 1 running totals of the query tokens.
    /// </summary>
    public static long Length(int batch, int tablePages) => (long)batch * (tablePages + 1L) + batch + 1;

    /// <summary>
    /// Tables up to this many bytes are read by the decode kernel in place, from pinned host memory mapped for the device
    /// (<see cref="CudaStream.TryMapForKernels"/>), instead of uploaded: on the H100 a small upload held the kernel back 3.8 µs
    /// (268 bytes) to 9.4 µs (4 KB, PERF_NOTES §20c), and the kernel's first two reads of the table across PCIe are predicted
    /// to cost 2–4 (§20e, to be measured). Larger tables, and any where the stream cannot map one, are uploaded: their calls
    /// are long, and every warp reads the table once a page.
    /// </summary>
    public const int MappedBytes = 8192;

    /// <summary>Query tokens of the whole batch: the last running total.</summary>
    public static int Queries(ReadOnlySpan<int> cuQueries) => cuQueries.IsEmpty ? 0 : cuQueries[^1];

    /// <summary>The most query tokens one sequence of the batch has (the grid's row tiles follow it).</summary>
    public static int MostQueries(ReadOnlySpan<int> cuQueries)
    {
        var most = 0;
        for (var i = 1; i < cuQueries.Length; i++)
        {
            most = Math.Max(most, cuQueries[i] - cuQueries[i - 1]);
        }
        return most;
    }

    /// <summary>The longest sequence's length: positions q and k of a modifier stay below it, so arrays it indexes by them cover it.</summary>
    public static int Longest(ReadOnlySpan<int> lengths)
    {
        var longest = 0;
        foreach (var length in lengths)
        {
            longest = Math.Max(longest, length);
        }
        return longest;
    }

    /// <summary>Running totals of <paramref name="batch"/> sequences of <paramref name="each"/> query tokens: 0, each, 2·each, ...</summary>
    public static int[] Uniform(int batch, int each)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegative(each);
        var totals = new int[batch + 1];
        for (var i = 1; i <= batch; i++)
        {
            totals[i] = checked(totals[i - 1] + each);
        }
        return totals;
    }

    /// <summary>
    /// The device copy of a batch, in an array lent by the shared pool (dispose it once copied to the device); throws, naming
    /// the argument and the rule, if any of it is inconsistent. It is built on every decode call, so it allocates nothing.
    /// </summary>
    /// <param name="cuQueries">[batch + 1]: running totals of each sequence's query tokens (its last ones), from 0, never decreasing.</param>
    /// <param name="lengths">[batch]: tokens each sequence holds, its query tokens included.</param>
    /// <param name="pageTable">[batch][tablePages]: each sequence's pages in order, −1 past its last.</param>
    /// <param name="tablePages">Entries per row of <paramref name="pageTable"/>.</param>
    /// <param name="pages">Pages in the pool.</param>
    /// <param name="pageSize">Tokens per page.</param>
    public static PooledInts Build(ReadOnlySpan<int> cuQueries, ReadOnlySpan<int> lengths, ReadOnlySpan<int> pageTable, int tablePages, int pages, int pageSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        var batch = lengths.Length;
        if (batch == 0)
        {
            throw new ArgumentException("'lengths' is empty: a batch has at least one sequence.", nameof(lengths));
        }
        if (cuQueries.Length != batch + 1)
        {
            throw new ArgumentException($"'cuQueries' has {cuQueries.Length} entries: {batch} sequences (lengths) need {batch + 1} running totals of their query tokens.", nameof(cuQueries));
        }
        if (cuQueries[0] != 0)
        {
            throw new ArgumentException($"'cuQueries'[0] = {cuQueries[0]}: running totals start at 0.", nameof(cuQueries));
        }
        if (tablePages < 1 || (long)batch * tablePages != pageTable.Length)
        {
            throw new ArgumentException($"'pageTable' has {pageTable.Length} entries; {batch} rows (lengths) of tablePages = {tablePages} need {(long)batch * Math.Max(1, tablePages)}, and a row has at least one entry.", nameof(pageTable));
        }
        for (var i = 0; i < batch; i++)
        {
            var queries = cuQueries[i + 1] - cuQueries[i];
            if (queries < 0)
            {
                throw new ArgumentException($"'cuQueries'[{i + 1}] = {cuQueries[i + 1]} is below 'cuQueries'[{i}] = {cuQueries[i]}: running totals never decrease.", nameof(cuQueries));
            }
            if (lengths[i] < queries)
            {
                throw new ArgumentOutOfRangeException(nameof(lengths), lengths[i], $"'lengths'[{i}] = {lengths[i]}: the sequence's {queries} query token(s) (cuQueries) are among its tokens, so it holds at least {queries}.");
            }
            if ((long)lengths[i] > (long)tablePages * pageSize)
            {
                throw new ArgumentOutOfRangeException(nameof(lengths), lengths[i], $"'lengths'[{i}] = {lengths[i]} tokens need {((long)lengths[i] + pageSize - 1) / pageSize} pages of {pageSize}, but 'pageTable' rows have {tablePages}.");
            }
        }
        CheckPages(pageTable, lengths, tablePages, pages, pageSize);
        var work = new PooledInts(checked((int)Length(batch, tablePages)));
        pageTable.CopyTo(work.Writable);
        lengths.CopyTo(work.Writable[(batch * tablePages)..]);
        cuQueries.CopyTo(work.Writable[(batch * (tablePages + 1))..]);
        return work;
    }

    /// <summary>
    /// Splits for a decode of <paramref name="blocks"/> blocks a split (sequences × KV heads × row tiles) on a device that holds
    /// <paramref name="residentBlocks"/> of them at once (SMs × blocks per SM, from the driver's occupancy calculator): the most
    /// that still run as one wave, but never fewer than <paramref name="pagesPerSplit"/> pages of the longest sequence a split,
    /// so each warp of a block has a page; one split where a split's blocks already fill the device.
    /// </summary>
    /// <remarks>
    /// A split's blocks all get the same share of pages, so blocks past one wave do not balance anything: with 17 splits of
    /// 8 blocks on 132 slots, 4 blocks run alone after the other 132 and the call takes two blocks' time where 16 splits take
    /// one (each block's share is only 1/16 larger). The same holds for every count that crosses a multiple of the slots, so
    /// the count stops below the first crossing.
    /// </remarks>
    public static int Splits(int longest, int pageSize, long blocks, int residentBlocks, int pagesPerSplit)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(longest, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(residentBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(pagesPerSplit, 1);
        var oneWave = residentBlocks / blocks;
        var most = Math.Max(1L, ((long)longest + pageSize - 1) / pageSize / pagesPerSplit);
        return (int)Math.Clamp(oneWave, 1L, most);
    }

    /// <summary>Each row's pages up to its length lie in the pool, none twice in the row; past them, −1 or a page of the pool.</summary>
    private static void CheckPages(ReadOnlySpan<int> pageTable, ReadOnlySpan<int> lengths, int tablePages, int pages, int pageSize)
    {
        // A stamp a row: a page another row lists is no duplicate (decode only reads; rows may share a prefix's pages).
        var rowOf = PageMarks.Reserve(pages, lengths.Length, out var firstStamp);
        for (var i = 0; i < lengths.Length; i++)
        {
            var stamp = firstStamp + i;
            var row = pageTable.Slice(i * tablePages, tablePages);
            var needed = (int)Math.Min(tablePages, ((long)lengths[i] + pageSize - 1) / pageSize);  // lengths fit their rows (checked before)
            for (var j = 0; j < needed; j++)
            {
                var page = row[j];
                if ((uint)page >= (uint)pages)
                {
                    throw new ArgumentOutOfRangeException(nameof(pageTable), page,
                        $"'pageTable'[{i}, {j}] = {page} is not a page of the pool (0 to {pages - 1}): sequence {i} reads pages 0 to {needed - 1} of its row for its {lengths[i]} tokens.");
                }
                if (rowOf[page] == stamp)
                {
                    throw new ArgumentException($"page {page} is in 'pageTable'[{i}, {row[..j].IndexOf(page)}] and [{i}, {j}]: a sequence's tokens lie in distinct pages.", nameof(pageTable));
                }
                rowOf[page] = stamp;
            }
            for (var j = needed; j < tablePages; j++)
            {
                var page = row[j];
                if (page != -1 && (uint)page >= (uint)pages)
                {
                    throw new ArgumentOutOfRangeException(nameof(pageTable), page,
                        $"'pageTable'[{i}, {j}] = {page} is not a page of the pool (0 to {pages - 1}): past a row's needed pages, an entry is −1 or a page.");
                }
            }
        }
    }
}
