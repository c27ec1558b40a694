using System.Globalization;
using System.Runtime.CompilerServices;
using KernelDsl.Launching;
using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// A CUDA stream: launches and copies on it run in order. <see cref="CudaDevice.CreateStream"/>'s are blocking streams,
/// so they also order with the synchronous copies of <see cref="DeviceBuffer{T}"/>.
/// </summary>
public sealed unsafe class CudaStream : IDisposable
{
    private readonly nint _handle;
    private int _disposed;
    private PinnedStaging? _staging;

    /// <summary>This stream's pinned slots, made on its first small copy (its constructor allocates nothing, so a lost race costs nothing).</summary>
    private PinnedStaging Staging => _staging ?? Interlocked.CompareExchange(ref _staging, new PinnedStaging(Device), null) ?? _staging!;

    /// <summary><c>CU_STREAM_NON_BLOCKING</c>: the stream does not synchronize with the legacy default stream.</summary>
    internal const uint NonBlocking = 1;

    internal CudaStream(CudaDevice device, uint flags = 0)
    {
        Device = device;
        device.MakeCurrent();
        CudaException.Check(CudaApi.cuStreamCreate(out _handle, flags), $"Creating a stream on device {device.Ordinal}");
    }

    /// <summary>The device the stream belongs to.</summary>
    public CudaDevice Device { get; }

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>
    /// Launches <paramref name="entryPoint"/> of <paramref name="module"/> on a <paramref name="grid"/>, with the block
    /// size and dynamic shared memory the entry point was generated for. The module is compiled for this device
    /// (through <see cref="CudaDevice.Modules"/>) and loaded on first use.
    /// </summary>
    /// <exception cref="NotSupportedException">The device is older than the module's minimum SM.</exception>
    /// <exception cref="NvrtcCompilationException">The module's source did not compile.</exception>
    /// <exception cref="CudaException">Loading or launching failed.</exception>
    public void Launch(KernelModuleDefinition module, string entryPoint, Dim3 grid, KernelArguments arguments) =>
        LaunchKernel(module, entryPoint, grid, arguments, programmatic: false);

    /// <summary>
    /// <see cref="Launch"/> as a programmatic dependent of the kernel queued just before it (sm_90 and later): its blocks
    /// may be scheduled once every block of that kernel has started (or signalled <c>griddepcontrol.launch_dependents</c>),
    /// so its launch overlaps that kernel's tail. The entry point must execute <c>griddepcontrol.wait</c> before it reads
    /// anything the previous kernel writes; that wait returns once the previous kernel has ended and its writes are visible.
    /// On older devices, or with a driver that has no <c>cuLaunchKernelEx</c>, it is an ordinary launch.
    /// </summary>
    public void LaunchDependent(KernelModuleDefinition module, string entryPoint, Dim3 grid, KernelArguments arguments) =>
        LaunchKernel(module, entryPoint, grid, arguments, programmatic: Device.DependentLaunches);

    private void LaunchKernel(KernelModuleDefinition module, string entryPoint, Dim3 grid, KernelArguments arguments, bool programmatic)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(entryPoint);
        ArgumentNullException.ThrowIfNull(arguments);
        ThrowIfDisposed();
        var function = Device.Function(module, entryPoint);
        var entry = function.Entry;
        Device.MakeCurrent();
        var result = CuResult.Success;
        arguments.WithPointers(parameters =>
        {
            if (!programmatic)
            {
                result = CudaApi.cuLaunchKernel(function.Handle, grid.X, grid.Y, grid.Z, (uint)entry.ThreadsPerBlock, 1, 1, (uint)entry.SharedMemoryBytes, _handle, parameters, 0);
                return;
            }
            var attribute = new CuLaunchAttribute { Id = CuLaunchAttribute.ProgrammaticStreamSerialization, Value = 1 };
            var config = new CuLaunchConfig
            {
                GridX = grid.X, GridY = grid.Y, GridZ = grid.Z, BlockX = (uint)entry.ThreadsPerBlock, BlockY = 1, BlockZ = 1,
                SharedMemoryBytes = (uint)entry.SharedMemoryBytes, Stream = _handle, Attributes = &attribute, AttributeCount = 1,
            };
            result = CudaApi.cuLaunchKernelEx(&config, function.Handle, parameters, 0);
        });
        if (result != CuResult.Success)
        {
            // Built only on failure: launches are the hot path.
            throw new CudaException(result,
                string.Create(CultureInfo.InvariantCulture,
                    $"Launching '{entry.Name}' of '{module.Name}' with grid ({grid.X}, {grid.Y}, {grid.Z}), {entry.ThreadsPerBlock} threads per block and {entry.SharedMemoryBytes} bytes of dynamic shared memory{(programmatic ? " as a programmatic dependent launch" : "")}"),
                function.DescribeResources());
        }
    }

    /// <summary>Queues a copy of <paramref name="source"/> to the start of <paramref name="destination"/>.</summary>
    /// <remarks>
    /// The span may be reused at once. Up to <see cref="PinnedStaging.MaxBytes"/> the data is copied into one of this
    /// stream's four page-locked slots first, so queueing waits for the device only when the copy four before it has not
    /// landed yet; larger copies, and any while every slot is held by a <see cref="TryMapForKernels"/> copy, come from the
    /// span's own (pageable) memory, which the driver stages before returning.
    /// </remarks>
    public void CopyToDevice<T>(DeviceBuffer<T> destination, ReadOnlySpan<T> source) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(destination);
        var bytes = destination.PrefixBytes(source.Length, nameof(source));
        if (bytes == 0)
        {
            return;
        }
        ThrowIfDisposed();
        Device.MakeCurrent();
        fixed (T* host = source)
        {
            if ((long)bytes <= PinnedStaging.MaxBytes && Staging.TryCopy(destination.DevicePointer, host, bytes, _handle))
            {
                return;
            }
            CudaException.Check(CudaApi.cuMemcpyHtoDAsync_v2(destination.DevicePointer, host, bytes, _handle), $"Queueing a copy of {bytes} bytes to {destination}");
        }
    }

    /// <summary>
    /// A copy of <paramref name="source"/> in one of this stream's pinned slots, mapped for the device: kernels queued on
    /// this stream read it in place at <see cref="MappedHostCopy.Address"/>, across PCIe, with no upload queued before them.
    /// Dispose it once the kernels that read it are queued: the slot is then written again only after they have run.
    /// </summary>
    /// <returns>
    /// The copy, or null where the device cannot read host memory (<see cref="CudaDevice.CanMapHostMemory"/>) or every
    /// slot is held by an undisposed copy: the caller then uploads the data instead.
    /// </returns>
    /// <remarks>For small, latency-bound data a kernel reads a few times (a decode call's page table); at most <see cref="PinnedStaging.MaxBytes"/>.</remarks>
    public MappedHostCopy? TryMapForKernels<T>(ReadOnlySpan<T> source) where T : unmanaged
    {
        var bytes = (long)source.Length * sizeof(T);
        if (bytes is 0 or > PinnedStaging.MaxBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(source), bytes, $"A mapped copy holds 1 to {PinnedStaging.MaxBytes} bytes.");
        }
        ThrowIfDisposed();
        if (!Device.CanMapHostMemory)
        {
            return null;
        }
        Device.MakeCurrent();
        fixed (T* host = source)
        {
            return Staging.TryMap(host, (nuint)bytes, out var slot, out var address) ? new MappedHostCopy(this, slot, address) : null;
        }
    }

    /// <summary>Ends a <see cref="TryMapForKernels"/> copy's hold on its slot after the work queued so far; nothing once the stream or device is disposed. Never throws.</summary>
    internal void Release(int slot)
    {
        if (IsDisposed || Device.IsDisposed)
        {
            return;
        }
        Device.MakeCurrent();
        Staging.Release(slot, _handle);
    }

    /// <summary>Whether disposing the stream found a mapped copy still held and waited for its kernels first (for tests).</summary>
    internal bool WaitedForMappedReaders => _staging?.WaitedForMappedReaders ?? false;

    /// <summary>Copies the start of <paramref name="source"/> into <paramref name="destination"/> after the work queued before it.</summary>
    /// <remarks>Into ordinary (pageable) memory the driver returns only when the copy is done, so the span is filled on return.</remarks>
    public void CopyToHost<T>(DeviceBuffer<T> source, Span<T> destination) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(source);
        var bytes = source.PrefixBytes(destination.Length, nameof(destination));
        if (bytes == 0)
        {
            return;
        }
        ThrowIfDisposed();
        Device.MakeCurrent();
        fixed (T* host = destination)
        {
            CudaException.Check(CudaApi.cuMemcpyDtoHAsync_v2(host, source.DevicePointer, bytes, _handle), $"Queueing a copy of {bytes} bytes from {source}");
        }
    }

    /// <summary>Queues copying <paramref name="count"/> elements of <paramref name="source"/> from <paramref name="sourceOffset"/> into <paramref name="destination"/> at <paramref name="destinationOffset"/>.</summary>
    public void Copy<T>(DeviceBuffer<T> source, long sourceOffset, DeviceBuffer<T> destination, long destinationOffset, long count) where T : unmanaged =>
        Copy2D(source, sourceOffset, count, destination, destinationOffset, count, count, count == 0 ? 0 : 1);

    /// <summary>
    /// Queues copying <paramref name="height"/> rows of <paramref name="width"/> elements, row i from
    /// <paramref name="sourceOffset"/> + i·<paramref name="sourcePitch"/> of <paramref name="source"/> to
    /// <paramref name="destinationOffset"/> + i·<paramref name="destinationPitch"/> of <paramref name="destination"/>
    /// (all in elements): e.g. a range of tokens of every head, between tensors of different lengths.
    /// </summary>
    public void Copy2D<T>(DeviceBuffer<T> source, long sourceOffset, long sourcePitch, DeviceBuffer<T> destination, long destinationOffset,
        long destinationPitch, long width, long height) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        CheckRows(source.Length, sourceOffset, sourcePitch, width, height, nameof(source));
        CheckRows(destination.Length, destinationOffset, destinationPitch, width, height, nameof(destination));
        if (width == 0 || height == 0)
        {
            return;
        }
        ThrowIfDisposed();
        var size = (nuint)Unsafe.SizeOf<T>();
        var copy = new CudaMemcpy2D
        {
            SrcMemoryType = CudaMemcpy2D.DeviceMemory,
            SrcDevice = source.DevicePointer + (ulong)sourceOffset * size,
            SrcPitch = (nuint)sourcePitch * size,
            DstMemoryType = CudaMemcpy2D.DeviceMemory,
            DstDevice = destination.DevicePointer + (ulong)destinationOffset * size,
            DstPitch = (nuint)destinationPitch * size,
            WidthInBytes = (nuint)width * size,
            Height = (nuint)height,
        };
        Device.MakeCurrent();
        var result = CuResult.Success;
        if (RowByRow(copy.SrcPitch, copy.DstPitch, copy.WidthInBytes, height, Device.MaxPitchBytes))
        {
            for (var row = 0UL; row < copy.Height && result == CuResult.Success; row++)
            {
                result = CudaApi.cuMemcpyDtoDAsync_v2(copy.DstDevice + row * copy.DstPitch, copy.SrcDevice + row * copy.SrcPitch, copy.WidthInBytes, _handle);
            }
        }
        else
        {
            result = CudaApi.cuMemcpy2DAsync_v2(&copy, _handle);
        }
        CudaException.Check(result, string.Create(CultureInfo.InvariantCulture,
            $"Queueing a copy of {height} rows of {width} elements from {source} to {destination}"));
    }

    /// <summary>
    /// Whether a 2D copy goes as one plain copy per row: one row needs no pitch, and cuMemcpy2D refuses a pitch or width
    /// past the device's maximum (CUDA_ERROR_INVALID_VALUE), which rows of big BSHD chunks with batch &gt; 1 can reach.
    /// </summary>
    internal static bool RowByRow(nuint sourcePitchBytes, nuint destinationPitchBytes, nuint widthBytes, long height, long maxPitchBytes) =>
        height == 1 || (ulong)sourcePitchBytes > (ulong)maxPitchBytes || (ulong)destinationPitchBytes > (ulong)maxPitchBytes || (ulong)widthBytes > (ulong)maxPitchBytes;

    /// <summary>Makes work queued on this stream from now on wait until <paramref name="recorded"/> (recorded on any stream of the device) has passed.</summary>
    public void Wait(CudaEvent recorded)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        ThrowIfDisposed();
        Device.MakeCurrent();
        CudaException.Check(CudaApi.cuStreamWaitEvent(_handle, recorded.Handle, 0), "Making a stream wait for an event");
    }

    /// <summary>Queues setting every byte of <paramref name="buffer"/> to <paramref name="value"/>.</summary>
    public void FillBytes<T>(DeviceBuffer<T> buffer, byte value) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ThrowIfDisposed();
        Device.MakeCurrent();
        CudaException.Check(CudaApi.cuMemsetD8Async(buffer.DevicePointer, value, (nuint)buffer.SizeInBytes, _handle), $"Queueing a fill of {buffer}");
    }

    /// <summary>Records an event at this point of the stream, for timing or waiting.</summary>
    public CudaEvent Record()
    {
        ThrowIfDisposed();
        return new CudaEvent(Device, _handle);
    }

    /// <summary>Waits for everything queued on this stream; reports asynchronous kernel faults.</summary>
    public void Synchronize()
    {
        ThrowIfDisposed();
        Device.MakeCurrent();
        CudaException.Check(CudaApi.cuStreamSynchronize(_handle), $"Synchronizing a stream of device {Device.Ordinal}");
    }

    /// <summary>
    /// Destroys the stream; work already queued still completes. While a <see cref="TryMapForKernels"/> copy is undisposed,
    /// its kernels may still be reading it: then the stream's work is waited for before its pinned slots are freed.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || Device.IsDisposed)
        {
            return;
        }
        _staging?.Dispose(_handle);
        Device.MakeCurrent();
        CudaException.Check(CudaApi.cuStreamDestroy_v2(_handle), "Destroying a stream");
    }

    /// <summary>Whether everything queued so far has finished: true, false while work is pending; reports faults as Synchronize does.</summary>
    internal bool IsIdle()
    {
        ThrowIfDisposed();
        Device.MakeCurrent();
        var result = CudaApi.cuStreamQuery(_handle);
        if (result == CuResult.NotReady)
        {
            return false;
        }
        CudaException.Check(result, $"Querying a stream of device {Device.Ordinal}");
        return true;
    }

    /// <summary>The driver's handle, for libraries that take a stream (NCCL).</summary>
    internal nint Handle
    {
        get
        {
            ThrowIfDisposed();
            return _handle;
        }
    }

    /// <summary><paramref name="height"/> rows of <paramref name="width"/>, <paramref name="pitch"/> apart from <paramref name="offset"/>, lie inside <paramref name="length"/> elements.</summary>
    internal static void CheckRows(long length, long offset, long pitch, long width, long height, string name)
    {
        if (offset < 0 || width < 0 || height < 0 || pitch < width)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"{name}: offset ({offset}), width ({width}) and height ({height}) must not be negative, and the pitch ({pitch}) at least the width."), name);
        }
        if (width > 0 && height > 0 && (Int128)offset + (Int128)(height - 1) * pitch + width > length)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"{name}: {height} rows of {width} elements, {pitch} apart from element {offset}, reach past its {length} elements."), name);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);
}
