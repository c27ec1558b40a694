using System.Globalization;
using KernelDsl.Launching;
using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// A CUDA stream: launches and copies on it run in order. It is a blocking stream, so it also orders with the
/// synchronous copies of <see cref="DeviceBuffer{T}"/>.
/// </summary>
public sealed unsafe class CudaStream : IDisposable
{
    private readonly nint _handle;
    private int _disposed;

    internal CudaStream(CudaDevice device)
    {
        Device = device;
        device.MakeCurrent();
        CudaException.Check(CudaApi.cuStreamCreate(out _handle, 0), $"Creating a stream on device {device.Ordinal}");
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
    public void Launch(KernelModuleDefinition module, string entryPoint, Dim3 grid, KernelArguments arguments)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(entryPoint);
        ArgumentNullException.ThrowIfNull(arguments);
        ThrowIfDisposed();
        var function = Device.Function(module, entryPoint);
        var entry = function.Entry;
        Device.MakeCurrent();
        var result = CuResult.Success;
        arguments.WithPointers(parameters => result = CudaApi.cuLaunchKernel(
            function.Handle, grid.X, grid.Y, grid.Z, (uint)entry.ThreadsPerBlock, 1, 1, (uint)entry.SharedMemoryBytes, _handle, parameters, 0));
        if (result != CuResult.Success)
        {
            // Built only on failure: launches are the hot path.
            throw new CudaException(result,
                string.Create(CultureInfo.InvariantCulture,
                    $"Launching '{entry.Name}' of '{module.Name}' with grid ({grid.X}, {grid.Y}, {grid.Z}), {entry.ThreadsPerBlock} threads per block and {entry.SharedMemoryBytes} bytes of dynamic shared memory"),
                function.DescribeResources());
        }
    }

    /// <summary>Queues a copy of <paramref name="source"/> to the start of <paramref name="destination"/>.</summary>
    /// <remarks>From ordinary (pageable) memory the driver stages the data before returning, so the span may be reused at once.</remarks>
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
            CudaException.Check(CudaApi.cuMemcpyHtoDAsync_v2(destination.DevicePointer, host, bytes, _handle), $"Queueing a copy of {bytes} bytes to {destination}");
        }
    }

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

    /// <summary>Destroys the stream; work already queued still completes.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || Device.IsDisposed)
        {
            return;
        }
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

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);
}
