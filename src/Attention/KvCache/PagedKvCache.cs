using System.Runtime.InteropServices;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Launching;

namespace KernelDsl.Attention.KvCache;

/// <summary>A batch's page table on the device, for the kernels that read the cache: int32 [rows][TablePages] (−1 past a row's pages) and [rows] lengths.</summary>
public sealed record KvDevicePageTable(DeviceBuffer<int> Table, int TablePages, DeviceBuffer<int> Lengths, IReadOnlyList<int> Batch) : IDisposable
{
    public void Dispose()
    {
        Table.Dispose();
        Lengths.Dispose();
    }
}

/// <summary>
/// A paged INT8 KV cache in device memory (issue 16, docs/KV_CACHE.md): a pool of pages of 64 tokens holding, per KV head,
/// int8 K codes with one scale and the page's channel mean, and int8 V codes with one scale per channel; a page table per
/// sequence (<see cref="Table"/>); and one staging slot per live sequence holding the f16/bf16 originals of its last,
/// partial page, from which that page is requantized at each append. <see cref="Append(CudaStream, IReadOnlyList{int}, IReadOnlyList{int}, DeviceBuffer{Half}, DeviceBuffer{Half})"/>
/// quantizes new tokens straight into their pages with a generated KvCacheAppend kernel. Every refusal (an unknown
/// sequence, a shape that does not match, an append past the pool's capacity, by default a NaN or ±Inf among the new
/// tokens) comes before any change or launch of the append. Not thread-safe.
/// </summary>
public sealed partial class PagedKvCache : IDisposable
{
    /// <summary>A generated launcher, as a value.</summary>
    private delegate void AppendLaunch<T>(CudaStream stream, DeviceBuffer<T> kNew, DeviceBuffer<T> vNew, ReadOnlySpan<int> cuNewTokens, ReadOnlySpan<int> lengths,
        ReadOnlySpan<int> pageTable, int tablePages, ReadOnlySpan<int> stagingSlots, DeviceBuffer<sbyte> kCodes, DeviceBuffer<float> kScale, DeviceBuffer<float> kMean,
        DeviceBuffer<sbyte> vCodes, DeviceBuffer<float> vScale, DeviceBuffer<T> kStaging, DeviceBuffer<T> vStaging, DeviceBuffer<int> workspace, int headsKv, int pages, int slots,
        DeviceBuffer<uint>? nonFinite) where T : unmanaged;

    /// <summary>A generated launcher's CountNonFinite, as a value.</summary>
    private delegate void CountLaunch<T>(CudaStream stream, DeviceBuffer<T> kNew, DeviceBuffer<T> vNew, long newTokens, int headsKv, DeviceBuffer<uint> nonFinite)
        where T : unmanaged;

    /// <summary>One variant's two entry points, for one element type.</summary>
    private sealed record AppendKernels<T>(AppendLaunch<T> Launch, CountLaunch<T> Count) where T : unmanaged;

    /// <summary>The declared append kernels, by head dim and input element (KvAppendVariants.cs).</summary>
    private static readonly (int HeadDim, Element Input, int PageSize, object Kernels)[] Variants =
    [
        (KvAppendD64.HeadDim, Element.F16, KvAppendD64.PageSize, new AppendKernels<Half>(KvAppendD64.Launch, KvAppendD64.CountNonFinite)),
        (KvAppendD128.HeadDim, Element.F16, KvAppendD128.PageSize, new AppendKernels<Half>(KvAppendD128.Launch, KvAppendD128.CountNonFinite)),
        (KvAppendD256.HeadDim, Element.F16, KvAppendD256.PageSize, new AppendKernels<Half>(KvAppendD256.Launch, KvAppendD256.CountNonFinite)),
        (KvAppendD128Bf16.HeadDim, Element.BF16, KvAppendD128Bf16.PageSize, new AppendKernels<ushort>(KvAppendD128Bf16.Launch, KvAppendD128Bf16.CountNonFinite)),
    ];

    private readonly object _kernels;
    private readonly IDisposable _kStaging, _vStaging;
    private DeviceBuffer<int>? _workspace;
    /// <summary>K's and V's NaN/Inf counts of the append being checked.</summary>
    private readonly DeviceBuffer<uint> _nonFinite;

    private PagedKvCache(CudaDevice device, int pages, int sequences, int headsKv, int headDim, Element input, int pageSize, object kernels)
    {
        (Device, HeadsKv, HeadDim, Input, _kernels) = (device, headsKv, headDim, input, kernels);
        Sequences = new KvSequences(pages, sequences, pageSize);
        var codes = (long)pages * headsKv * pageSize * headDim;
        var staging = (long)sequences * headsKv * pageSize * headDim;
        KCodes = device.Allocate<sbyte>(codes);
        VCodes = device.Allocate<sbyte>(codes);
        KScale = device.Allocate<float>((long)pages * headsKv);
        KMean = device.Allocate<float>((long)pages * headsKv * headDim);
        VScale = device.Allocate<float>((long)pages * headsKv * headDim);
        IDisposable Staging() => input == Element.BF16 ? device.Allocate<ushort>(staging) : device.Allocate<Half>(staging);
        (_kStaging, _vStaging) = (Staging(), Staging());
        _workspace = device.Allocate<int>(KvAppendWork.MaxItems(sequences, pageSize, pageSize) * KvAppendWork.ItemInts);
        _nonFinite = device.Allocate<uint>(2);
    }

    /// <summary>
    /// A cache of <paramref name="pages"/> pages for at most <paramref name="sequences"/> live sequences of
    /// <paramref name="headsKv"/> KV heads of <paramref name="headDim"/> channels, taking <paramref name="input"/> tokens.
    /// </summary>
    /// <exception cref="NotSupportedException">No append kernel is declared for that head dim and element.</exception>
    public static PagedKvCache Create(CudaDevice device, int pages, int sequences, int headsKv, int headDim, Element input = Element.F16)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(headsKv, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(headsKv, 65535);
        var variant = Variants.FirstOrDefault(v => v.HeadDim == headDim && v.Input == input);
        if (variant.Kernels is null)
        {
            throw new NotSupportedException($"No KV cache append kernel is declared for head dim {headDim} with {input} input; declared: " +
                string.Join(", ", Variants.Select(v => $"{v.HeadDim} {v.Input}")) + ".");
        }
        return new PagedKvCache(device, pages, sequences, headsKv, headDim, input, variant.PageSize, variant.Kernels);
    }

    public CudaDevice Device { get; }
    public KvSequences Sequences { get; }
    /// <summary>Which pages each sequence owns, and its length.</summary>
    public KvPageTable Table => Sequences.Table;
    public int PageSize => Table.PageSize;
    public int HeadsKv { get; }
    public int HeadDim { get; }
    public Element Input { get; }

    /// <summary>int8 [pages][Hkv][PageSize][D]; slots past a page's last token hold 0.</summary>
    public DeviceBuffer<sbyte> KCodes { get; }
    /// <summary>[pages][Hkv]: K = code · scale + mean.</summary>
    public DeviceBuffer<float> KScale { get; }
    /// <summary>[pages][Hkv][D]: each page's channel mean over its tokens.</summary>
    public DeviceBuffer<float> KMean { get; }
    /// <summary>int8 [pages][Hkv][PageSize][D].</summary>
    public DeviceBuffer<sbyte> VCodes { get; }
    /// <summary>[pages][Hkv][D]: V = code · scale[channel].</summary>
    public DeviceBuffer<float> VScale { get; }
    /// <summary>The originals of each slot's partial page, [slots][Hkv][PageSize][D], f16 (<see cref="Half"/>) or bf16 bits (<see cref="ushort"/>).</summary>
    public DeviceBuffer<T> KStaging<T>() where T : unmanaged => Staging<T>(_kStaging);
    public DeviceBuffer<T> VStaging<T>() where T : unmanaged => Staging<T>(_vStaging);

    public int AddSequence() => Sequences.AddSequence();

    public void Free(int sequence) => Sequences.Free(sequence);

    /// <summary>
    /// Appends <paramref name="newTokens"/>[i] tokens to <paramref name="batch"/>[i] for each i, on <paramref name="stream"/>:
    /// <paramref name="k"/> and <paramref name="v"/> are f16 [Σ newTokens][Hkv][D], the batch's sequences one after another.
    /// Checks them for NaN and ±Inf first, waiting for the stream (<see cref="NonFiniteInputs.Throw"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The pool lacks the pages; nothing changed.</exception>
    /// <exception cref="NonFiniteAppendException">k or v holds a NaN or ±Inf; nothing changed.</exception>
    public void Append(CudaStream stream, IReadOnlyList<int> batch, IReadOnlyList<int> newTokens, DeviceBuffer<Half> k, DeviceBuffer<Half> v) =>
        Append<Half>(stream, batch, newTokens, k, v, NonFiniteInputs.Throw);

    /// <summary>As the f16 overload, for a bf16 cache: <paramref name="k"/> and <paramref name="v"/> hold bf16 bits.</summary>
    /// <exception cref="InvalidOperationException">The pool lacks the pages; nothing changed.</exception>
    /// <exception cref="NonFiniteAppendException">k or v holds a NaN or ±Inf; nothing changed.</exception>
    public void Append(CudaStream stream, IReadOnlyList<int> batch, IReadOnlyList<int> newTokens, DeviceBuffer<ushort> k, DeviceBuffer<ushort> v) =>
        Append<ushort>(stream, batch, newTokens, k, v, NonFiniteInputs.Throw);

    /// <summary>
    /// The same, choosing what a NaN or ±Inf among the new tokens does. <see cref="NonFiniteInputs.Throw"/>: a kernel counts
    /// them on the stream and the call waits for it before it appends anything, then throws <see cref="NonFiniteAppendException"/>
    /// (naming k or v, the counts and the sequences) with the cache as it was. <see cref="NonFiniteInputs.Ignore"/>: no
    /// count and no wait; a bad value gets the quantizers' treatment in its page (docs/KV_CACHE.md), for as long as the page lives.
    /// </summary>
    /// <exception cref="InvalidOperationException">The pool lacks the pages; nothing changed.</exception>
    /// <exception cref="NonFiniteAppendException">k or v holds a NaN or ±Inf and <paramref name="nonFinite"/> is Throw; nothing changed.</exception>
    public void Append(CudaStream stream, IReadOnlyList<int> batch, IReadOnlyList<int> newTokens, DeviceBuffer<Half> k, DeviceBuffer<Half> v,
        NonFiniteInputs nonFinite) => Append<Half>(stream, batch, newTokens, k, v, nonFinite);

    /// <summary>As the f16 overload, for a bf16 cache: <paramref name="k"/> and <paramref name="v"/> hold bf16 bits.</summary>
    /// <exception cref="InvalidOperationException">The pool lacks the pages; nothing changed.</exception>
    /// <exception cref="NonFiniteAppendException">k or v holds a NaN or ±Inf and <paramref name="nonFinite"/> is Throw; nothing changed.</exception>
    public void Append(CudaStream stream, IReadOnlyList<int> batch, IReadOnlyList<int> newTokens, DeviceBuffer<ushort> k, DeviceBuffer<ushort> v,
        NonFiniteInputs nonFinite) => Append<ushort>(stream, batch, newTokens, k, v, nonFinite);

    private void Append<T>(CudaStream stream, IReadOnlyList<int> batch, IReadOnlyList<int> newTokens, DeviceBuffer<T> k, DeviceBuffer<T> v,
        NonFiniteInputs nonFinite) where T : unmanaged
    {
        LaunchGuard.Stream(stream, nameof(stream));
        LaunchGuard.Buffer(k, nameof(k));
        LaunchGuard.Buffer(v, nameof(v));
        if (_kernels is not AppendKernels<T> kernels)
        {
            throw new ArgumentException($"This cache takes {Input} tokens ({(Input == Element.BF16 ? "DeviceBuffer<ushort> of bf16 bits" : "DeviceBuffer<Half>")}).", nameof(k));
        }
        ArgumentNullException.ThrowIfNull(newTokens);
        var total = newTokens.Sum(n => (long)Math.Max(0, n));
        var row = (long)HeadsKv * HeadDim;
        foreach (var (buffer, name) in new[] { (k, nameof(k)), (v, nameof(v)) })
        {
            if (buffer.Length < total * row)
            {
                throw new ArgumentException($"'{name}' holds {buffer.Length} values; [Σ newTokens = {total}][Hkv = {HeadsKv}][D = {HeadDim}] needs {total * row}.", name);
            }
        }
        Sequences.Check(batch, newTokens);  // every refusal of the batch, before the wait below
        if (nonFinite == NonFiniteInputs.Throw && total > 0)
        {
            ThrowIfNonFinite(stream, kernels.Count, batch, newTokens, k, v, total);
        }
        var lengths = Sequences.Append(batch, newTokens);
        using var rows = Table.Rent(batch);
        var slots = batch.Select(Sequences.SlotOf).ToArray();
        Grow(stream, ref _workspace, KvAppendWork.MaxItems(batch.Count, total, PageSize) * KvAppendWork.ItemInts);
        // Counted already, or not wanted: the kernel's own count is for callers that can use counts after the pages are written.
        kernels.Launch(stream, k, v, Totals(newTokens), lengths, rows.Table, rows.Pages, slots, KCodes, KScale, KMean, VCodes, VScale,
            Staging<T>(_kStaging), Staging<T>(_vStaging), _workspace!, HeadsKv, Table.Capacity, Sequences.Slots, null);
    }

    /// <summary>
    /// Counts the new tokens' NaN and Inf on the stream and waits; if there are any, throws before anything changed. Counting
    /// first, not during the append, is what keeps the cache as it was: the append rewrites the sequence's partial page and,
    /// across a page boundary, the staged originals it was quantized from, which a rollback of the lengths could not restore.
    /// </summary>
    private void ThrowIfNonFinite<T>(CudaStream stream, CountLaunch<T> count, IReadOnlyList<int> batch, IReadOnlyList<int> newTokens,
        DeviceBuffer<T> k, DeviceBuffer<T> v, long total) where T : unmanaged
    {
        stream.FillBytes(_nonFinite, 0);
        count(stream, k, v, total, HeadsKv, _nonFinite);
        stream.Synchronize();
        var counts = new uint[2];
        _nonFinite.CopyTo(counts);
        if (counts[0] == 0 && counts[1] == 0)
        {
            return;
        }
        // Rare: which sequences, from the values themselves.
        var elements = checked((int)(total * HeadsKv * HeadDim));
        var (kBits, vBits) = (new T[elements], new T[elements]);
        k.CopyTo(kBits);
        v.CopyTo(vBits);
        throw NonFiniteAppendException.Find(batch, newTokens, MemoryMarshal.Cast<T, ushort>(kBits), MemoryMarshal.Cast<T, ushort>(vBits), Input,
            HeadsKv * HeadDim, (counts[0], counts[1]))!;
    }

    /// <summary>The page table of <paramref name="batch"/> on the device, for a kernel that reads the cache (the caller disposes it).</summary>
    public KvDevicePageTable UploadPageTable(CudaStream stream, IReadOnlyList<int> batch)
    {
        LaunchGuard.Stream(stream, nameof(stream));
        var (table, tablePages, lengths) = Table.Table(batch);
        var deviceTable = Device.Allocate<int>(Math.Max(1, table.Length));
        var deviceLengths = Device.Allocate<int>(Math.Max(1, lengths.Length));
        stream.CopyToDevice(deviceTable, table);
        stream.CopyToDevice(deviceLengths, lengths);
        return new KvDevicePageTable(deviceTable, tablePages, deviceLengths, batch.ToArray());
    }

    private DeviceBuffer<T> Staging<T>(IDisposable buffer) where T : unmanaged => buffer as DeviceBuffer<T>
        ?? throw new ArgumentException($"This cache stages {Input} tokens as {(Input == Element.BF16 ? "ushort" : "Half")}.", nameof(T));

    public void Dispose()
    {
        foreach (var buffer in new IDisposable?[] { KCodes, VCodes, KScale, KMean, VScale, _kStaging, _vStaging, _workspace, _nonFinite, _decodeWorkspace, _partialO, _partialLse })
        {
            buffer?.Dispose();
        }
    }
}
