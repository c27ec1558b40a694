using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// Page-locked slots that a stream's small host-to-device copies pass through. From pageable memory the driver may wait
/// for the stream before it stages a copy (the driver API's synchronization rules), so the host's next launches queue
/// only once the device has drained: decode's per-call page table is such a copy. From a pinned slot the copy is fully
/// asynchronous. A slot is overwritten only once its last copy has completed (its event), so the host waits only when it
/// runs more than four copies ahead of the device. A slot may also be read in place by kernels (<see cref="TryMap"/>): then it
/// is written again only after those kernels have run.
/// </summary>
internal sealed unsafe class PinnedStaging
{
    /// <summary>Copies up to this size take a slot; larger ones stay pageable, where staging would cost more than it saves.</summary>
    public const long MaxBytes = 1 << 20;

    private const int Slots = 4;
    /// <summary><c>CU_EVENT_DISABLE_TIMING</c>: the events only order, so they skip the timestamps.</summary>
    private const uint NoTiming = 2;
    /// <summary><c>CU_MEMHOSTALLOC_DEVICEMAP</c>: the slots are also mapped for the device, so a kernel may read one in place.</summary>
    private const uint DeviceMapped = 2;

    private readonly CudaDevice _device;
    private readonly nint[] _memory = new nint[Slots];
    private readonly nuint[] _capacity = new nuint[Slots];
    private readonly nint[] _copied = new nint[Slots];
    private readonly bool[] _pending = new bool[Slots];
    private readonly bool[] _reserved = new bool[Slots];
    private readonly Lock _gate = new();
    private int _next;
    private bool _disposed;

    /// <summary>Whether <see cref="Dispose"/> found a slot still mapped and waited for the stream before freeing it (for tests).</summary>
    public bool WaitedForMappedReaders { get; private set; }

    public PinnedStaging(CudaDevice device) => _device = device;

    /// <summary>
    /// Copies <paramref name="bytes"/> at <paramref name="source"/> into a slot and queues the slot's copy to
    /// <paramref name="destination"/> on <paramref name="stream"/>; false, with nothing queued, when every slot is mapped.
    /// </summary>
    public bool TryCopy(ulong destination, void* source, nuint bytes, nint stream)
    {
        lock (_gate)
        {
            var slot = Take(source, bytes);
            if (slot < 0)
            {
                return false;
            }
            CudaException.Check(CudaApi.cuMemcpyHtoDAsync_v2(destination, (void*)_memory[slot], bytes, stream), $"Queueing a copy of {bytes} bytes");
            Record(slot, stream, "Recording a staged copy");
            return true;
        }
    }

    /// <summary>
    /// Copies <paramref name="bytes"/> at <paramref name="source"/> into a slot that kernels read in place, and gives the
    /// slot and its device address; false, with nothing copied, when every slot is already mapped. The slot is reserved
    /// until <see cref="Release"/> records, on the stream, the point after the kernels that read it; only then may it be
    /// written again.
    /// </summary>
    public bool TryMap(void* source, nuint bytes, out int slot, out ulong address)
    {
        lock (_gate)
        {
            address = 0;
            slot = Take(source, bytes);
            if (slot < 0)
            {
                return false;
            }
            // Reserved only once mapped: a failure leaves the slot free, with no use pending.
            CudaException.Check(CudaApi.cuMemHostGetDevicePointer_v2(out address, _memory[slot], 0), "Mapping a pinned staging slot for the device");
            _reserved[slot] = true;
            return true;
        }
    }

    /// <summary>
    /// Ends <see cref="TryMap"/>'s reservation: the slot is free once the work queued on <paramref name="stream"/> so far
    /// has run. Nothing once the slots are freed (the stream was disposed first, after waiting for its work). Never
    /// throws: it runs where a mapping is disposed, often while a launch's own error unwinds. If the point after the
    /// kernels cannot be recorded (a failed context), the slot stays reserved: a slot fewer, and kernels that may still
    /// read it undisturbed.
    /// </summary>
    public void Release(int slot, nint stream)
    {
        lock (_gate)
        {
            if (!_disposed && TryRecord(slot, stream) == CuResult.Success)
            {
                _reserved[slot] = false;
            }
        }
    }

    /// <summary>
    /// The next slot not reserved, once its last use has completed, holding a copy of the source; −1 when every slot is
    /// reserved (a caller holding four mappings, or mappings never disposed). Called under the lock.
    /// </summary>
    private int Take(void* source, nuint bytes)
    {
        if (_disposed)
        {
            throw new ObjectDisposedException(nameof(CudaStream), "The stream was disposed while it was being used.");
        }
        var slot = _next;
        for (var tried = 0; _reserved[slot]; tried++)
        {
            if (tried == Slots - 1)
            {
                return -1;
            }
            slot = (slot + 1) % Slots;
        }
        _next = (slot + 1) % Slots;
        if (_pending[slot])
        {
            CudaException.Check(CudaApi.cuEventSynchronize(_copied[slot]), "Waiting for a staged copy");
            _pending[slot] = false;
        }
        if (_capacity[slot] < bytes)
        {
            if (_memory[slot] != 0)
            {
                CudaException.Check(CudaApi.cuMemFreeHost(_memory[slot]), "Freeing a pinned staging slot");
                (_memory[slot], _capacity[slot]) = (0, 0);
            }
            var capacity = (nuint)Math.Max(4096UL, System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)bytes));
            CudaException.Check(CudaApi.cuMemHostAlloc(out _memory[slot], capacity, DeviceMapped), $"Allocating {capacity} bytes of pinned staging");
            _capacity[slot] = capacity;
        }
        if (_copied[slot] == 0)
        {
            CudaException.Check(CudaApi.cuEventCreate(out _copied[slot], NoTiming), "Creating a staging event");
        }
        Buffer.MemoryCopy(source, (void*)_memory[slot], _capacity[slot], bytes);
        return slot;
    }

    /// <summary><see cref="TryRecord"/>, throwing on failure once the stream has drained. Called under the lock.</summary>
    private void Record(int slot, nint stream, string what)
    {
        var recorded = TryRecord(slot, stream);
        if (recorded != CuResult.Success)
        {
            // Without its event the slot's use cannot be waited for alone: wait for the stream before reporting.
            _ = CudaApi.cuStreamSynchronize(stream);
            throw new CudaException(recorded, what);
        }
    }

    /// <summary>Records the slot's event on the stream: the slot is written again only once it has passed. Called under the lock.</summary>
    private CuResult TryRecord(int slot, nint stream)
    {
        var recorded = CudaApi.cuEventRecord(_copied[slot], stream);
        if (recorded == CuResult.Success)
        {
            _pending[slot] = true;
        }
        return recorded;
    }

    /// <summary>
    /// Waits for the slots' copies, then frees them (the context must still be alive). A slot still mapped has no event
    /// for the kernels reading it, so then the whole of <paramref name="stream"/> is waited for first.
    /// </summary>
    public void Dispose(nint stream)
    {
        lock (_gate)
        {
            if (_disposed || _device.IsDisposed)
            {
                return;
            }
            _disposed = true;
            _device.MakeCurrent();
            if (Array.IndexOf(_reserved, true) >= 0)
            {
                _ = CudaApi.cuStreamSynchronize(stream);
                WaitedForMappedReaders = true;
            }
            for (var slot = 0; slot < Slots; slot++)
            {
                if (_pending[slot])
                {
                    _ = CudaApi.cuEventSynchronize(_copied[slot]);
                    _pending[slot] = false;
                }
                if (_copied[slot] != 0)
                {
                    _ = CudaApi.cuEventDestroy_v2(_copied[slot]);
                    _copied[slot] = 0;
                }
                if (_memory[slot] != 0)
                {
                    _ = CudaApi.cuMemFreeHost(_memory[slot]);
                    (_memory[slot], _capacity[slot]) = (0, 0);
                }
            }
        }
    }
}
