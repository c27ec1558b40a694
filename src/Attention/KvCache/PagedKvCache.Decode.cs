using KernelDsl.Launching;

namespace KernelDsl.Attention.KvCache;

public sealed partial class PagedKvCache
{
    /// <summary>
    /// The library's plain decode variants (PagedDecodeVariants.cs): the first of each head dim and Q/O element is its default,
    /// the others compete with it when <see cref="Autotune"/> is set.
    /// </summary>
    private static readonly (int HeadDim, Element Input, object Kernel)[] DecodeVariants =
    [
        Entry(PagedDecodeD64.With()), Entry(PagedDecodeD128.With()), Entry(PagedDecodeD128Bf16.With()),
        Entry(PagedDecodeD128Warps2.With()), Entry(PagedDecodeD128Warps8.With()), Entry(PagedDecodeD128Stages3.With()),
        Entry(PagedDecodeD128Warps2Stages3.With()),
    ];

    private static (int, Element, object) Entry<T>(PagedDecodeKernel<T> kernel) where T : unmanaged => (kernel.HeadDim, kernel.Input, kernel);

    private DeviceBuffer<int>? _decodeWorkspace;
    private DeviceBuffer<float>? _partialO, _partialLse;

    /// <summary>
    /// Decode attention of <paramref name="batch"/>'s sequences over this cache, on <paramref name="stream"/>: each sequence's last
    /// <paramref name="seqQ"/> tokens (already appended) attend to all its tokens, causal bottom-right.
    /// <paramref name="queries"/> and <paramref name="output"/> are f16 [batch][seqQ][headsQ][D] (token-major: the tokens of
    /// <see cref="Attend(CudaStream, DeviceBuffer{Half}, IReadOnlyList{int}, IReadOnlyList{int}, int, DeviceBuffer{Half}, DeviceBuffer{float}?, float?, int?)"/>
    /// with seqQ each); <paramref name="lse"/>, if given, receives [batch][seqQ][headsQ] natural-log LSEs. The query heads
    /// sharing a KV head (headsQ / HeadsKv of them) are one group. The scores' scale defaults to 1/√D; <paramref name="splits"/>,
    /// the blocks each sequence's pages are split over, to the variant's SplitsFor for this device.
    /// </summary>
    /// <exception cref="ArgumentException">A bad argument, named, before anything is queued.</exception>
    public void Decode(CudaStream stream, DeviceBuffer<Half> queries, IReadOnlyList<int> batch, int headsQ, int seqQ, DeviceBuffer<Half> output,
        DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null) =>
        Attend<Half>(stream, queries, batch, Uniform(batch, seqQ), headsQ, output, lse, softmaxScale, splits);

    /// <summary>As the f16 overload, for bf16 Q and O (bf16 bits as <see cref="ushort"/>).</summary>
    public void Decode(CudaStream stream, DeviceBuffer<ushort> queries, IReadOnlyList<int> batch, int headsQ, int seqQ, DeviceBuffer<ushort> output,
        DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null) =>
        Attend<ushort>(stream, queries, batch, Uniform(batch, seqQ), headsQ, output, lse, softmaxScale, splits);

    /// <summary>
    /// Attention of each sequence's last <paramref name="queryTokens"/>[i] tokens (already appended; 0 skips it) to all its tokens,
    /// causal bottom-right, in one launch: decode steps and prefill chunks of any lengths mixed. <paramref name="queries"/> and
    /// <paramref name="output"/> are f16 [Σ queryTokens][headsQ][D], the batch's sequences one after another (as
    /// <see cref="Append(CudaStream, IReadOnlyList{int}, IReadOnlyList{int}, DeviceBuffer{Half}, DeviceBuffer{Half})"/> takes K and V);
    /// <paramref name="lse"/>, if given, receives [Σ queryTokens][headsQ] natural-log LSEs.
    /// </summary>
    /// <exception cref="ArgumentException">A bad argument, named, before anything is queued.</exception>
    public void Attend(CudaStream stream, DeviceBuffer<Half> queries, IReadOnlyList<int> batch, IReadOnlyList<int> queryTokens, int headsQ,
        DeviceBuffer<Half> output, DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null) =>
        Attend<Half>(stream, queries, batch, queryTokens, headsQ, output, lse, softmaxScale, splits);

    /// <summary>As the f16 overload, for bf16 Q and O (bf16 bits as <see cref="ushort"/>).</summary>
    public void Attend(CudaStream stream, DeviceBuffer<ushort> queries, IReadOnlyList<int> batch, IReadOnlyList<int> queryTokens, int headsQ,
        DeviceBuffer<ushort> output, DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null) =>
        Attend<ushort>(stream, queries, batch, queryTokens, headsQ, output, lse, softmaxScale, splits);

    /// <summary>
    /// Chunked prefill: appends <paramref name="newTokens"/>[i] tokens of K and V to <paramref name="batch"/>[i], then lets the
    /// same tokens' queries attend to the whole sequence (its earlier tokens and the chunk itself, causal bottom-right), on
    /// <paramref name="stream"/>. <paramref name="queries"/> and <paramref name="output"/> are f16 [Σ newTokens][headsQ][D];
    /// <paramref name="k"/> and <paramref name="v"/> [Σ newTokens][Hkv][D], as <see cref="Append(CudaStream, IReadOnlyList{int}, IReadOnlyList{int}, DeviceBuffer{Half}, DeviceBuffer{Half})"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A bad argument, named, before anything is queued.</exception>
    public void Prefill(CudaStream stream, IReadOnlyList<int> batch, IReadOnlyList<int> newTokens, DeviceBuffer<Half> queries, DeviceBuffer<Half> k,
        DeviceBuffer<Half> v, int headsQ, DeviceBuffer<Half> output, DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null)
        => Prefill(stream, PlainVariant<Half>(), batch, newTokens, queries, k, v, headsQ, output, lse, softmaxScale, splits);

    /// <summary>As the f16 overload, for a bf16 cache (bf16 bits as <see cref="ushort"/>).</summary>
    public void Prefill(CudaStream stream, IReadOnlyList<int> batch, IReadOnlyList<int> newTokens, DeviceBuffer<ushort> queries, DeviceBuffer<ushort> k,
        DeviceBuffer<ushort> v, int headsQ, DeviceBuffer<ushort> output, DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null)
        => Prefill(stream, PlainVariant<ushort>(), batch, newTokens, queries, k, v, headsQ, output, lse, softmaxScale, splits);

    private static IReadOnlyList<int> Uniform(IReadOnlyList<int> batch, int seqQ)
    {
        ArgumentNullException.ThrowIfNull(batch);
        LaunchGuard.Positive(seqQ, nameof(seqQ));
        return Enumerable.Repeat(seqQ, batch.Count).ToArray();
    }

    /// <summary>The plain variant's attention: <see cref="Attend{T}(CudaStream, PagedDecodeKernel{T}, DeviceBuffer{T}, IReadOnlyList{int}, IReadOnlyList{int}, int, DeviceBuffer{T}, DeviceBuffer{float}?, float?, int?)"/> with it.</summary>
    private void Attend<T>(CudaStream stream, DeviceBuffer<T> queries, IReadOnlyList<int> batch, IReadOnlyList<int> queryTokens, int headsQ,
        DeviceBuffer<T> output, DeviceBuffer<float>? lse, float? softmaxScale, int? splits) where T : unmanaged =>
        Attend(stream, PlainVariant<T>(), queries, batch, queryTokens, headsQ, output, lse, softmaxScale, splits);

    /// <summary>The checks of an attention call that need no launch: what a prefill must refuse before it appends.</summary>
    private void CheckAttention<T>(DeviceBuffer<T> queries, IReadOnlyList<int> batch, IReadOnlyList<int> queryTokens, int headsQ, DeviceBuffer<T> output,
        DeviceBuffer<float>? lse, int? splits) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(queryTokens);
        if (batch.Count == 0)
        {
            throw new ArgumentException("'batch' is empty: attend with at least one sequence.", nameof(batch));
        }
        if (queryTokens.Count != batch.Count)
        {
            throw new ArgumentException($"'{nameof(queryTokens)}' has {queryTokens.Count} counts for {batch.Count} sequences in 'batch'.", nameof(queryTokens));
        }
        for (var i = 0; i < queryTokens.Count; i++)
        {
            if (queryTokens[i] < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(queryTokens), queryTokens[i], $"'{nameof(queryTokens)}'[{i}] = {queryTokens[i]}: a sequence has 0 or more query tokens.");
            }
        }
        LaunchGuard.Buffer(queries, nameof(queries));
        LaunchGuard.Buffer(output, nameof(output));
        LaunchGuard.Positive(headsQ, nameof(headsQ));
        LaunchGuard.MultipleOf(headsQ, HeadsKv, nameof(headsQ), $"the cache has {HeadsKv} KV heads and each serves a group of query heads");
        var rows = queryTokens.Sum(n => (long)n) * headsQ;
        LaunchGuard.AtMost(rows, int.MaxValue, nameof(queryTokens), "query tokens × headsQ output rows are counted in int");
        if (splits is int count)
        {
            LaunchGuard.Positive(count, nameof(splits));
            LaunchGuard.AtMost(count, 65535, nameof(splits), "splits are the grid's y extent");
        }
        LaunchGuard.Holds(queries, rows * HeadDim, nameof(queries), $"Q [{rows / headsQ}][{headsQ}][{HeadDim}]");
        LaunchGuard.Holds(output, rows * HeadDim, nameof(output), $"O [{rows / headsQ}][{headsQ}][{HeadDim}]");
        if (lse is not null)
        {
            LaunchGuard.Holds(lse, rows, nameof(lse), $"LSE [{rows / headsQ}][{headsQ}]");
        }
    }

    /// <summary>Running totals of per-sequence token counts, from 0: the launchers' cumulative-length arrays.</summary>
    private static int[] Totals(IReadOnlyList<int> counts)
    {
        var totals = new int[counts.Count + 1];
        for (var i = 0; i < counts.Count; i++)
        {
            totals[i + 1] = checked(totals[i] + counts[i]);
        }
        return totals;
    }

    /// <summary>
    /// Attention with the batch given as query totals, lengths and a page table ([batch][tablePages], −1 past a row's pages) over
    /// this cache's pool, for callers that keep their own tables. Sequence i's query tokens are rows
    /// <paramref name="cuQueries"/>[i] to [i + 1] − 1 of <paramref name="queries"/> ([Σ][headsQ][D]), its last tokens. Every entry a
    /// length needs must be a page of the pool, distinct within its row; each length must fit its row and hold its query
    /// tokens. Checked before anything is queued.
    /// </summary>
    public void AttendPages<T>(CudaStream stream, DeviceBuffer<T> queries, ReadOnlySpan<int> cuQueries, ReadOnlySpan<int> lengths,
        ReadOnlySpan<int> pageTable, int tablePages, int headsQ, DeviceBuffer<T> output, DeviceBuffer<float>? lse = null, float? softmaxScale = null,
        int? splits = null) where T : unmanaged
    {
        LaunchGuard.Stream(stream, nameof(stream));
        LaunchGuard.Buffer(queries, nameof(queries));
        LaunchGuard.Buffer(output, nameof(output));
        AttendPages(PlainVariant<T>(), stream, queries, cuQueries, lengths, pageTable, tablePages, headsQ, output, lse, softmaxScale, splits);
    }

    /// <summary>
    /// The plain decode variant of this cache's head dim and element, for Q and O of <typeparamref name="T"/>: the first declared
    /// one this device runs. On an sm_86/89 card, whose blocks get 99 KB of shared memory, the D = 128 f16 default does not fit
    /// and the two-warp configuration runs instead; D = 64 and bf16 have one configuration each, too large there, and are
    /// refused with the device's limits named.
    /// </summary>
    private PagedDecodeKernel<T> PlainVariant<T>() where T : unmanaged => Candidates<T>()[0];

    /// <summary>Why no declared configuration serves a call with Q and O of <typeparamref name="T"/> on this device.</summary>
    private Exception NoConfiguration<T>() where T : unmanaged
    {
        var declared = DecodeVariants.Where(v => v.HeadDim == HeadDim && v.Input == Input).Select(v => v.Kernel).ToArray();
        if (declared.Length == 0)
        {
            return new NotSupportedException($"No paged decode kernel is declared for head dim {HeadDim} with {Input} queries; declared: " +
                string.Join(", ", DecodeVariants.Select(v => $"{v.HeadDim} {v.Input}")) + ".");
        }
        var typed = declared.OfType<PagedDecodeKernel<T>>().ToArray();
        if (typed.Length == 0)
        {
            return new ArgumentException(
                $"This cache attends with {Input} queries ({(Input == Element.BF16 ? "DeviceBuffer<ushort> of bf16 bits" : "DeviceBuffer<Half>")}).", "queries");
        }
        return new NotSupportedException(
            $"None of the paged decode kernels declared for head dim {HeadDim} with {Input} queries runs on {Device.Name} (sm_{Device.ComputeCapability}, " +
            $"{Device.MaxSharedMemoryPerBlockOptin} bytes of shared memory a block): {string.Join(", ", typed.Select(k => k.Name))}.");
    }

    /// <summary>The public AttendPages with the decode variant given (a plain one, or one with modifiers bound).</summary>
    private void AttendPages<T>(PagedDecodeKernel<T> kernel, CudaStream stream, DeviceBuffer<T> queries, ReadOnlySpan<int> cuQueries,
        ReadOnlySpan<int> lengths, ReadOnlySpan<int> pageTable, int tablePages, int headsQ, DeviceBuffer<T> output, DeviceBuffer<float>? lse, float? softmaxScale,
        int? splits) where T : unmanaged
    {
        LaunchGuard.Positive(headsQ, nameof(headsQ));
        LaunchGuard.MultipleOf(headsQ, HeadsKv, nameof(headsQ), $"the cache has {HeadsKv} KV heads and each serves a group of query heads");
        if (lengths.Length == 0)
        {
            throw new ArgumentException("'lengths' is empty: attend with at least one sequence.", nameof(lengths));
        }
        var longest = 1;
        foreach (var length in lengths)
        {
            longest = Math.Max(longest, length);
        }
        var mostQueries = Math.Max(1, KvDecodeWork.MostQueries(cuQueries));
        if (Autotune && ReferenceEquals(kernel, PlainVariant<T>()) && Candidates<T>() is { Count: > 1 } candidates)
        {
            var key = TuningKey(Device.ArchName, Device.Name, Input, HeadDim, headsQ, HeadsKv, lengths.Length, longest, mostQueries, splits);
            if (Decided(candidates, key) is { } decided)
            {
                kernel = decided;
            }
            else
            {
                // The measuring runs in a lambda, which cannot hold spans: copies, once per key.
                var (totals, held, table) = (cuQueries.ToArray(), lengths.ToArray(), pageTable.ToArray());
                kernel = Tuned(candidates, key, stream, candidate =>
                    LaunchPages(candidate, stream, queries, totals, held, table, tablePages, headsQ, output, lse, softmaxScale, splits, longest, mostQueries));
            }
        }
        LaunchPages(kernel, stream, queries, cuQueries, lengths, pageTable, tablePages, headsQ, output, lse, softmaxScale, splits, longest, mostQueries);
    }

    /// <summary>AttendPages' launch, once its arguments are checked: the split count, the scratch buffers, the kernels.</summary>
    private void LaunchPages<T>(PagedDecodeKernel<T> kernel, CudaStream stream, DeviceBuffer<T> queries, ReadOnlySpan<int> cuQueries, ReadOnlySpan<int> lengths,
        ReadOnlySpan<int> pageTable, int tablePages, int headsQ, DeviceBuffer<T> output, DeviceBuffer<float>? lse, float? softmaxScale, int? splits,
        int longest, int mostQueries) where T : unmanaged
    {
        var count = splits ?? kernel.SplitsOn(Device, longest, lengths.Length, headsQ, HeadsKv, mostQueries);
        LaunchGuard.Positive(count, nameof(splits));
        var queryTokens = KvDecodeWork.Queries(cuQueries);
        Grow(stream, ref _decodeWorkspace, KvDecodeWork.Length(lengths.Length, tablePages));
        Grow(stream, ref _partialO, Math.Max(1, count * (long)queryTokens * headsQ * HeadDim));
        Grow(stream, ref _partialLse, Math.Max(1, count * (long)queryTokens * headsQ));
        kernel.Launch(stream, queries, cuQueries, lengths, pageTable, tablePages, KCodes, KScale, KMean, VCodes, VScale, _decodeWorkspace!, _partialO!, _partialLse!,
            output, lse, headsQ, HeadsKv, Table.Capacity, count, softmaxScale ?? 1f / MathF.Sqrt(HeadDim));
    }

    /// <summary>A scratch buffer of at least <paramref name="length"/> elements; a queued append or decode may still read the old one.</summary>
    private void Grow<T>(CudaStream stream, ref DeviceBuffer<T>? buffer, long length) where T : unmanaged
    {
        if (buffer is not null && buffer.Length >= length)
        {
            return;
        }
        if (buffer is not null)
        {
            stream.Synchronize();
            buffer.Dispose();
        }
        buffer = Device.Allocate<T>(Math.Max(length, 2 * (buffer?.Length ?? 0)));
    }
}
