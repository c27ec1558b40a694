namespace KernelDsl.Launching;

/// <summary>
/// The host half of a generated KV cache append launcher: checks a batch (cumulative new-token counts, lengths before
/// the append, page table, staging slots) against the cache's pages and slots, and turns it into the kernel's work list,
/// one item per (sequence, page its new tokens touch). The kernel reads only pages and slots this list names, so
/// everything it could index is checked here, on the host, before anything is queued.
/// </summary>
public static class KvAppendWork
{
    /// <summary>Ints per item, in this order: page, start, fill, source, slot, stage_from, stage_to, stage_source (the generated kernel's).</summary>
    public const int ItemInts = 8;

    /// <summary>The most items a batch of <paramref name="batch"/> sequences appending <paramref name="newTokens"/> tokens in all can need.</summary>
    /// <remarks>A sequence appending n ≥ 1 tokens touches at most floor((n − 1) / pageSize) + 2 pages.</remarks>
    public static long MaxItems(int batch, long newTokens, int pageSize) => newTokens / pageSize + 2L * batch;

    /// <summary>
    /// The work list (<see cref="ItemInts"/> ints per item) of an append, in an array lent by the shared pool (dispose it once
    /// copied to the device); throws, naming the argument, if any of it is inconsistent. Built on every append, so it
    /// allocates nothing.
    /// </summary>
    /// <param name="cuNewTokens">[batch + 1]: 0, then the running total of the sequences' new tokens (rows of the new K and V).</param>
    /// <param name="lengths">[batch]: the tokens each sequence holds before the append.</param>
    /// <param name="pageTable">[batch][tablePages]: each sequence's pages in order.</param>
    /// <param name="tablePages">Entries per row of <paramref name="pageTable"/>.</param>
    /// <param name="stagingSlots">[batch]: the slot holding each sequence's partial page's originals.</param>
    /// <param name="pages">Pages in the pool.</param>
    /// <param name="slots">Staging slots.</param>
    /// <param name="pageSize">Tokens per page.</param>
    /// <param name="newTokens">Σ new tokens: the rows of the new K and V.</param>
    public static PooledInts Build(ReadOnlySpan<int> cuNewTokens, ReadOnlySpan<int> lengths, ReadOnlySpan<int> pageTable, int tablePages,
        ReadOnlySpan<int> stagingSlots, int pages, int slots, int pageSize, out int newTokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        var batch = lengths.Length;
        if (batch == 0)
        {
            throw new ArgumentException("'lengths' is empty: a batch has at least one sequence.", nameof(lengths));
        }
        if (cuNewTokens.Length != batch + 1)
        {
            throw new ArgumentException($"'cuNewTokens' has {cuNewTokens.Length} entries; a batch of {batch} sequences (lengths) needs {batch + 1}: 0, then each running total.", nameof(cuNewTokens));
        }
        if (cuNewTokens[0] != 0)
        {
            throw new ArgumentException($"'cuNewTokens'[0] = {cuNewTokens[0]} must be 0: the first sequence's tokens start at row 0.", nameof(cuNewTokens));
        }
        if (stagingSlots.Length != batch)
        {
            throw new ArgumentException($"'stagingSlots' has {stagingSlots.Length} entries for {batch} sequences.", nameof(stagingSlots));
        }
        if (tablePages < 0 || (long)batch * tablePages != pageTable.Length)
        {
            throw new ArgumentException($"'pageTable' has {pageTable.Length} entries; {batch} rows of tablePages = {tablePages} need {(long)batch * Math.Max(0, tablePages)}.", nameof(pageTable));
        }
        long items = 0;
        for (var i = 0; i < batch; i++)
        {
            var count = (long)cuNewTokens[i + 1] - cuNewTokens[i];
            if (count < 0)
            {
                throw new ArgumentException($"'cuNewTokens'[{i + 1}] = {cuNewTokens[i + 1]} is below 'cuNewTokens'[{i}] = {cuNewTokens[i]}: running totals never decrease.", nameof(cuNewTokens));
            }
            if (lengths[i] < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(lengths), lengths[i], $"'lengths'[{i}] = {lengths[i]}: a sequence holds at least 0 tokens.");
            }
            var total = lengths[i] + count;
            if (total > int.MaxValue)
            {
                throw new ArgumentOutOfRangeException(nameof(cuNewTokens), total, $"sequence {i} would hold {total} tokens; a sequence holds at most {int.MaxValue}.");
            }
            var needed = (total + pageSize - 1) / pageSize;
            if (needed > tablePages)
            {
                throw new ArgumentException($"sequence {i} holds {total} tokens after the append, which need {needed} pages of {pageSize}, but 'pageTable' rows have {tablePages}.", nameof(pageTable));
            }
            if (count > 0)
            {
                items += (total - 1) / pageSize - lengths[i] / pageSize + 1;
            }
        }
        CheckSlots(stagingSlots, slots);
        CheckPages(pageTable, batch, tablePages, lengths, cuNewTokens, pages, pageSize);

        newTokens = cuNewTokens[batch];
        var work = new PooledInts(checked((int)(items * ItemInts)));
        var at = 0;
        for (var i = 0; i < batch; i++)
        {
            var (length, count) = (lengths[i], cuNewTokens[i + 1] - cuNewTokens[i]);
            if (count == 0)
            {
                continue;
            }
            var end = length + count;
            var (first, last) = (length / pageSize, (end - 1) / pageSize);
            for (var p = first; p <= last; p++)
            {
                var start = p == first ? length % pageSize : 0;
                var fill = Math.Min(pageSize, end - p * pageSize);
                var source = cuNewTokens[i] + p * pageSize + start - length;
                // The first page's block reads the staging slot, so it alone rewrites it: with the new partial page's
                // originals, if the sequence ends in one (its new tokens there, or all of them when the append crossed a page).
                var (stageFrom, stageTo, stageSource) = (0, 0, 0);
                if (p == first && end % pageSize != 0)
                {
                    (stageFrom, stageTo, stageSource) = last == first
                        ? (start, fill, source)
                        : (0, end % pageSize, cuNewTokens[i] + last * pageSize - length);
                }
                ReadOnlySpan<int> item = [pageTable[i * tablePages + p], start, fill, source, stagingSlots[i], stageFrom, stageTo, stageSource];
                item.CopyTo(work.Writable[at..]);
                at += ItemInts;
            }
        }
        return work;
    }

    private static void CheckSlots(ReadOnlySpan<int> stagingSlots, int slots)
    {
        var marks = PageMarks.Reserve(slots, 1, out var stamp);  // the marks serve any index range: here, slots
        for (var i = 0; i < stagingSlots.Length; i++)
        {
            var slot = stagingSlots[i];
            if (slot < 0 || slot >= slots)
            {
                throw new ArgumentOutOfRangeException(nameof(stagingSlots), slot, $"'stagingSlots'[{i}] = {slot}: the cache has slots 0 to {slots - 1}.");
            }
            if (marks[slot] == stamp)
            {
                throw new ArgumentException($"'stagingSlots'[{stagingSlots[..i].IndexOf(slot)}] and [{i}] are both {slot}: each sequence stages its partial page in a slot of its own.", nameof(stagingSlots));
            }
            marks[slot] = stamp;
        }
    }

    /// <summary>Each row's pages up to its length after the append lie in the pool; past it, −1 or a page; no page twice in the table.</summary>
    private static void CheckPages(ReadOnlySpan<int> pageTable, int batch, int tablePages, ReadOnlySpan<int> lengths, ReadOnlySpan<int> cuNewTokens, int pages, int pageSize)
    {
        // One stamp for the whole table: an append writes its pages, so no page may appear twice anywhere in it.
        var marks = PageMarks.Reserve(pages, 1, out var stamp);
        for (var i = 0; i < batch; i++)
        {
            var needed = ((long)lengths[i] + cuNewTokens[i + 1] - cuNewTokens[i] + pageSize - 1) / pageSize;
            for (var j = 0; j < tablePages; j++)
            {
                var index = i * tablePages + j;
                var page = pageTable[index];
                if (page == -1 && j >= needed)
                {
                    continue;
                }
                if (page < 0 || page >= pages)
                {
                    var why = j < needed ? $"sequence {i} needs pages 0 to {needed - 1} of its row for its tokens" : "past a row's needed pages, an entry is −1 or a page";
                    throw new ArgumentOutOfRangeException(nameof(pageTable), page, $"'pageTable'[{i}, {j}] = {page} is not a page of the pool (0 to {pages - 1}): {why}.");
                }
                if (marks[page] == stamp)
                {
                    var other = pageTable[..index].IndexOf(page);  // rare: found again for the message
                    throw new ArgumentException($"page {page} is in 'pageTable'[{other / tablePages}, {other % tablePages}] and [{i}, {j}]: a page belongs to one sequence, once.", nameof(pageTable));
                }
                marks[page] = stamp;
            }
        }
    }
}
