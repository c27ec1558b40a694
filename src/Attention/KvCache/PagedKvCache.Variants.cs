using KernelDsl.Attention.FlashAttention;
using KernelDsl.Launching;

namespace KernelDsl.Attention.KvCache;

public sealed partial class PagedKvCache
{
    /// <summary>
    /// <see cref="Attend(CudaStream, DeviceBuffer{Half}, IReadOnlyList{int}, IReadOnlyList{int}, int, DeviceBuffer{Half}, DeviceBuffer{float}?, float?, int?)"/>
    /// with a declared decode variant, typically one with modifiers: <paramref name="kernel"/> is its generated <c>With(...)</c>,
    /// which binds the modifiers' arguments (<c>SlidingWindow.PagedDecodeD128.With(window: 4096)</c>, <c>Alibi.PagedDecodeD128.With(slopes)</c>,
    /// <c>Softcap.PagedDecodeD128.With(cap: 30f)</c>). The modifiers see q and k as positions in the cache (a query token's is its
    /// sequence's length − n + j), b as the sequence's index in <paramref name="batch"/> and h as the query head.
    /// </summary>
    /// <exception cref="ArgumentException">A bad argument, named (a modifier array too short for what its modifier indexes included), before anything is queued.</exception>
    public void Attend<T>(CudaStream stream, PagedDecodeKernel<T> kernel, DeviceBuffer<T> queries, IReadOnlyList<int> batch, IReadOnlyList<int> queryTokens, int headsQ,
        DeviceBuffer<T> output, DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null) where T : unmanaged
    {
        LaunchGuard.Stream(stream, nameof(stream));
        CheckKernel(kernel);
        CheckAttention(queries, batch, queryTokens, headsQ, output, lse, splits);
        using var rows = Table.Rent(batch);  // refuses an unknown sequence
        AttendPages(kernel, stream, queries, Totals(queryTokens), rows.Lengths, rows.Table, rows.Pages, headsQ, output, lse, softmaxScale, splits);
    }

    /// <summary>
    /// <see cref="Prefill(CudaStream, IReadOnlyList{int}, IReadOnlyList{int}, DeviceBuffer{Half}, DeviceBuffer{Half}, DeviceBuffer{Half}, int, DeviceBuffer{Half}, DeviceBuffer{float}?, float?, int?)"/>
    /// (append each chunk, then attend with its queries) with a declared decode variant, as
    /// <see cref="Attend{T}(CudaStream, PagedDecodeKernel{T}, DeviceBuffer{T}, IReadOnlyList{int}, IReadOnlyList{int}, int, DeviceBuffer{T}, DeviceBuffer{float}?, float?, int?)"/> takes it.
    /// </summary>
    /// <exception cref="ArgumentException">A bad argument, named, before the cache changes.</exception>
    public void Prefill<T>(CudaStream stream, PagedDecodeKernel<T> kernel, IReadOnlyList<int> batch, IReadOnlyList<int> newTokens, DeviceBuffer<T> queries,
        DeviceBuffer<T> k, DeviceBuffer<T> v, int headsQ, DeviceBuffer<T> output, DeviceBuffer<float>? lse = null, float? softmaxScale = null, int? splits = null)
        where T : unmanaged
    {
        LaunchGuard.Stream(stream, nameof(stream));
        CheckKernel(kernel);
        CheckAttention(queries, batch, newTokens, headsQ, output, lse, splits);  // refused before the append changes the cache
        Append(stream, batch, newTokens, k, v, NonFiniteInputs.Throw);
        Attend(stream, kernel, queries, batch, newTokens, headsQ, output, lse, softmaxScale, splits);
    }

    /// <summary>The variant reads this cache's pages: its head dim, page size and Q/O element are the cache's.</summary>
    private void CheckKernel<T>(PagedDecodeKernel<T> kernel) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(kernel);
        if (kernel.HeadDim != HeadDim || kernel.PageSize != PageSize || kernel.Input != Input)
        {
            throw new ArgumentException($"{kernel.Name} decodes head dim {kernel.HeadDim}, pages of {kernel.PageSize}, {kernel.Input} queries; this cache holds head dim {HeadDim}, " +
                $"pages of {PageSize}, {Input} tokens.", nameof(kernel));
        }
    }
}
