using KernelDsl.Native;

namespace KernelDsl;

/// <summary>A point recorded on a stream (<see cref="CudaStream.Record"/>), for timing with the GPU's own clock.</summary>
public sealed class CudaEvent : IDisposable
{
    private readonly nint _handle;
    private int _disposed;

    internal CudaEvent(CudaDevice device, nint stream)
    {
        Device = device;
        device.MakeCurrent();
        CudaException.Check(CudaApi.cuEventCreate(out _handle, 0), "Creating an event");
        var recorded = CudaApi.cuEventRecord(_handle, stream);
        if (recorded != CuResult.Success)
        {
            _ = CudaApi.cuEventDestroy_v2(_handle);
            throw new CudaException(recorded, "Recording an event");
        }
    }

    /// <summary>The device the event was recorded on.</summary>
    public CudaDevice Device { get; }

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Milliseconds of GPU time from <paramref name="since"/> to this event; both must have completed.</summary>
    public float ElapsedMilliseconds(CudaEvent since)
    {
        ArgumentNullException.ThrowIfNull(since);
        ThrowIfDisposed();
        ObjectDisposedException.ThrowIf(since.IsDisposed, since);
        Device.MakeCurrent();
        CudaException.Check(CudaApi.cuEventElapsedTime(out var milliseconds, since._handle, _handle), "Reading the time between two events");
        return milliseconds;
    }

    /// <summary>Waits until the work queued before this event has finished.</summary>
    public void Synchronize()
    {
        ThrowIfDisposed();
        Device.MakeCurrent();
        CudaException.Check(CudaApi.cuEventSynchronize(_handle), "Waiting for an event");
    }

    /// <summary>Destroys the event.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || Device.IsDisposed)
        {
            return;
        }
        Device.MakeCurrent();
        CudaException.Check(CudaApi.cuEventDestroy_v2(_handle), "Destroying an event");
    }

    /// <summary>The driver's handle, for a stream to wait on (<see cref="CudaStream.Wait"/>).</summary>
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
