namespace KernelDsl.Launching;

/// <summary>
/// A generated paged decode launcher's <c>Launch</c> without its modifiers' arguments: the shape every PagedDecode variant
/// shares once <c>With(...)</c> has bound them (docs/KV_CACHE.md).
/// </summary>
public delegate void PagedDecodeLaunch<T>(CudaStream stream, DeviceBuffer<T> queries, ReadOnlySpan<int> cuQueries, ReadOnlySpan<int> lengths,
    ReadOnlySpan<int> pageTable, int tablePages, DeviceBuffer<sbyte> kCodes, DeviceBuffer<float> kScale, DeviceBuffer<float> kMean,
    DeviceBuffer<sbyte> vCodes, DeviceBuffer<float> vScale, DeviceBuffer<int> workspace, DeviceBuffer<float> partialO, DeviceBuffer<float> partialLse,
    DeviceBuffer<T> output, DeviceBuffer<float>? lse, int headsQ, int headsKv, int pages, int splits, float softmaxScale) where T : unmanaged;

/// <summary>A generated paged decode launcher's <c>SplitsFor</c>.</summary>
public delegate int PagedDecodeSplits(int longest, int batch, int headsQ, int headsKv, int mostQueries, int residentBlocks);

/// <summary>
/// One declared paged decode variant with its modifiers' arguments bound, as its generated <c>With(...)</c> returns it: what
/// a cache needs to run it (<c>PagedKvCache.Attend</c>). <typeparamref name="T"/> is Q's and O's C# element (Half, or ushort
/// for bf16 bits).
/// </summary>
/// <param name="Name">The declaring type's full name.</param>
/// <param name="HeadDim">Channels per head.</param>
/// <param name="Input">Q's and O's element: F16 or BF16.</param>
/// <param name="PageSize">Tokens per page.</param>
/// <param name="Warps">Warps per block: warp w of a split walks its steps w, w + Warps, … (the int8 model's partition).</param>
/// <param name="StageKeys">Keys of one step: the page, or half of it.</param>
/// <param name="Launch">The generated Launch, with the modifiers' arguments bound.</param>
/// <param name="SplitsFor">The generated split count suggestion.</param>
/// <param name="ResidentBlocks">The generated count of the decode kernel's blocks a device holds at once.</param>
/// <param name="Module">The generated module: its targets say which devices run it.</param>
public sealed record PagedDecodeKernel<T>(string Name, int HeadDim, Element Input, int PageSize, int Warps, int StageKeys, PagedDecodeLaunch<T> Launch, PagedDecodeSplits SplitsFor,
    Func<CudaDevice, int> ResidentBlocks, KernelModuleDefinition Module)
    where T : unmanaged
{
    /// <summary>
    /// Whether a device of <paramref name="computeCapability"/> (major·10 + minor) that grants a block up to
    /// <paramref name="sharedMemoryPerBlock"/> bytes runs it: its instructions are there, and its blocks fit (three stages of four
    /// warps at D = 128 fit sm_90's 227 KB, not sm_80's 163 KB nor sm_86/89's 99 KB).
    /// </summary>
    public bool RunsOn(int computeCapability, int sharedMemoryPerBlock) =>
        Module.RunsOn(computeCapability) && Module.EntryPoints.All(e => e.SharedMemoryBytes <= sharedMemoryPerBlock);

    /// <summary>Whether <paramref name="device"/> runs it (<see cref="RunsOn(int, int)"/> with the device's limits).</summary>
    public bool RunsOn(CudaDevice device) => RunsOn(device.ComputeCapability, device.MaxSharedMemoryPerBlockOptin);

    /// <summary>The most splits that run as one wave of this kernel's blocks on <paramref name="device"/>, as it really runs there.</summary>
    public int SplitsOn(CudaDevice device, int longest, int batch, int headsQ, int headsKv, int mostQueries) =>
        SplitsFor(longest, batch, headsQ, headsKv, mostQueries, ResidentBlocks(device));
}
