namespace KernelDsl;

/// <summary>
/// A copy of host data in pinned memory mapped for the device (<see cref="CudaStream.TryMapForKernels"/>): kernels read it
/// at <see cref="Address"/>. Disposing it, once the kernels that read it are queued, lets the stream reuse its slot after
/// they have run. One never disposed keeps its slot for the stream's life: the stream's copies and mappings then have a
/// slot fewer, and with all four held they go the slower pageable way (uploads) instead.
/// </summary>
public sealed class MappedHostCopy : IDisposable
{
    private readonly CudaStream _stream;
    private readonly int _slot;
    private int _disposed;

    internal MappedHostCopy(CudaStream stream, int slot, ulong address) => (_stream, _slot, Address) = (stream, slot, address);

    /// <summary>The copy's device address: a kernel argument in place of a buffer's device pointer.</summary>
    public ulong Address { get; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _stream.Release(_slot);
        }
    }
}
