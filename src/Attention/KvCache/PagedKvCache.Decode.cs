using KernelDsl.Launching;

namespace KernelDsl.Attention.KvCache;

public sealed partial class PagedKvCache
{
    /// <summary>A generated decode launcher, as a value.</summary>
    private delegate void DecodeLaunch<T>(CudaStream stream, DeviceBuffer<T> queries, ReadOnlySpan<int> lengths, ReadOnlySpan<int> pageTable, int tablePages,
        DeviceBuffer<sbyte> kCodes, DeviceBuffer<float> kScale, DeviceBuffer<float> kMean, DeviceBuffer<sbyte> vCodes, DeviceBuffer<float> vScale,
        DeviceBuffer<int> workspace, DeviceBuffer<float> partialO, DeviceBuffer<float> partialLse, DeviceBuffer<T> output, DeviceBuffer<float>? lse,
        int headsQ, int headsKv, int seqQ, int pages, int splits, float softmaxScale) where T : unmanaged;

    /// <summary>The split count a decode variant suggests (its generated SplitsFor).</summary>
    private delegate int SplitRule(int longest, int batch, int headsQ, int headsKv, int seqQ, int multiprocessors);

    /// <summary>The declared decode kernels, by head dim and Q/O element (PagedDecodeVariants.cs).</summary>
    private static readonly (int HeadDim, Element Input, Delegate Launch, SplitRule Splits)[] DecodeVariants =
    [
        (PagedDecodeD64.HeadDim, Element.F16, (DecodeLaunch<Half>)PagedDecodeD64.Launch, PagedDecodeD64.SplitsFor),
        (PagedDecodeD128.HeadDim, Element.F16, (DecodeLaunch<Half>)PagedDecodeD128.Launch, PagedDecodeD128.SplitsFor),
        (PagedDecodeD128Bf16.HeadDim, Element.BF16, (DecodeLaunch<ushort>)PagedDecodeD128Bf16.Launch, PagedDecodeD128Bf16.SplitsFor),
    ];

    private DeviceBuffer<int>? _decodeWorkspace;
    private DeviceBuffer<float>? _partialO, _partialLse;

    /// <summary>
    /// Decode attention of <paramref name="batch"/>'s sequences over this cache, on <paramref name="stream"/>: each sequence's last
    /// <paramref name="seqQ"/> tokens (1 to 16, already appended) attend to all its tokens, causal bottom-right.
    /// <paramref name="queries"/> and <paramref name="output"/> are f16 [batch][headsQ][seqQ][D]; <paramref name="lse"/>, if given,
    /// receives [batch][headsQ][seqQ] natural-log LSEs. The query heads sharing a KV head (headsQ / HeadsKv of them) are one group.
    /// The scores' scale defaults to 1/√D; <paramref name="splits"/>, the blocks each sequence's pages are split over, to the
    /// variant's SplitsFor for this device.
    /// </summary>
    /// <exception cref="ArgumentException">A bad argument, named, before anything is queued.</exception>
    public void Decode(CudaStream stream, DeviceBuffer<Half> queries, IReadOnlyList<int> batch, int headsQ, int seqQ, DeviceBuffer<Half> output,
        DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null) =>
        Decode<Half>(stream, queries, batch, headsQ, seqQ, output, lse, softmaxScale, splits);

    /// <summary>As the f16 overload, for bf16 Q and O (bf16 bits as <see cref="ushort"/>).</summary>
    public void Decode(CudaStream stream, DeviceBuffer<ushort> queries, IReadOnlyList<int> batch, int headsQ, int seqQ, DeviceBuffer<ushort> output,
        DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null) =>
        Decode<ushort>(stream, queries, batch, headsQ, seqQ, output, lse, softmaxScale, splits);

    private void Decode<T>(CudaStream stream, DeviceBuffer<T> queries, IReadOnlyList<int> batch, int headsQ, int seqQ, DeviceBuffer<T> output,
        DeviceBuffer<float>? lse, float? softmaxScale, int? splits) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count == 0)
        {
            throw new ArgumentException("'batch' is empty: decode at least one sequence.", nameof(batch));
        }
        var (table, tablePages, lengths) = Table.Table(batch);  // refuses an unknown sequence
        DecodePages(stream, queries, lengths, table, tablePages, headsQ, seqQ, output, lse, softmaxScale, splits);
    }

    /// <summary>
    /// Decode with the batch given as lengths and a page table ([batch][tablePages], −1 past a row's pages) over this cache's pool,
    /// for callers that keep their own tables. Every entry a length needs must be a page of the pool, distinct within its row;
    /// each length must fit its row and hold the seqQ query tokens. Checked before anything is queued.
    /// </summary>
    public void DecodePages<T>(CudaStream stream, DeviceBuffer<T> queries, ReadOnlySpan<int> lengths, ReadOnlySpan<int> pageTable, int tablePages,
        int headsQ, int seqQ, DeviceBuffer<T> output, DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null) where T : unmanaged
    {
        LaunchGuard.Stream(stream, nameof(stream));
        LaunchGuard.Buffer(queries, nameof(queries));
        LaunchGuard.Buffer(output, nameof(output));
        var variant = DecodeVariants.FirstOrDefault(v => v.HeadDim == HeadDim && v.Input == Input);
        if (variant.Launch is null)
        {
            throw new NotSupportedException($"No paged decode kernel is declared for head dim {HeadDim} with {Input} queries; declared: " +
                string.Join(", ", DecodeVariants.Select(v => $"{v.HeadDim} {v.Input}")) + ".");
        }
        if (variant.Launch is not DecodeLaunch<T> launch)
        {
            throw new ArgumentException($"This cache decodes {Input} queries ({(Input == Element.BF16 ? "DeviceBuffer<ushort> of bf16 bits" : "DeviceBuffer<Half>")}).", nameof(queries));
        }
        LaunchGuard.Positive(headsQ, nameof(headsQ));
        LaunchGuard.MultipleOf(headsQ, HeadsKv, nameof(headsQ), $"the cache has {HeadsKv} KV heads and each serves a group of query heads");
        LaunchGuard.Positive(seqQ, nameof(seqQ));
        if (lengths.Length == 0)
        {
            throw new ArgumentException("'lengths' is empty: decode at least one sequence.", nameof(lengths));
        }
        var longest = 1;
        foreach (var length in lengths)
        {
            longest = Math.Max(longest, length);
        }
        var count = splits ?? variant.Splits(longest, lengths.Length, headsQ, HeadsKv, seqQ, Device.SmCount);
        LaunchGuard.Positive(count, nameof(splits));
        var rows = (long)lengths.Length * headsQ * seqQ;
        Grow(stream, ref _decodeWorkspace, KvDecodeWork.Length(lengths.Length, tablePages));
        Grow(stream, ref _partialO, count * rows * HeadDim);
        Grow(stream, ref _partialLse, count * rows);
        launch(stream, queries, lengths, pageTable, tablePages, KCodes, KScale, KMean, VCodes, VScale, _decodeWorkspace!, _partialO!, _partialLse!,
            output, lse, headsQ, HeadsKv, seqQ, Table.Capacity, count, softmaxScale ?? 1f / MathF.Sqrt(HeadDim));
    }

    /// <summary>A scratch buffer of at least <paramref name="length"/> elements; a queued decode may still read the old one.</summary>
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
