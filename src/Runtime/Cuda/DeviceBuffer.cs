using System.Globalization;
using System.Runtime.CompilerServices;
using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// A block of device memory holding <see cref="Length"/> elements of <typeparamref name="T"/>. Synchronous copies
/// here order with all work on the device's blocking streams; use <see cref="CudaStream"/> for stream-ordered copies.
/// </summary>
public sealed unsafe class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    private readonly ulong _pointer;
    private int _disposed;

    internal DeviceBuffer(CudaDevice device, long length)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (length < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "A device buffer must hold at least one element.");
        }
        if (length > long.MaxValue / Unsafe.SizeOf<T>())
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"{length} elements of {typeof(T).Name} overflow a 64-bit byte count.");
        }
        Device = device;
        Length = length;
        SizeInBytes = length * Unsafe.SizeOf<T>();
        device.MakeCurrent();
        var result = CudaApi.cuMemAlloc_v2(out _pointer, (nuint)SizeInBytes);
        if (result == CuResult.OutOfMemory)
        {
            var (free, total) = device.MemoryInfo();
            throw new CudaException(result, $"Allocating {Describe()} on device {device.Ordinal}",
                string.Create(CultureInfo.InvariantCulture, $"Asked for {SizeInBytes} bytes; the device has {free} of {total} bytes free."));
        }
        CudaException.Check(result, $"Allocating {Describe()} on device {device.Ordinal}");
    }

    /// <summary>The device the memory lives on.</summary>
    public CudaDevice Device { get; }

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    /// <summary>Size in bytes.</summary>
    public long SizeInBytes { get; }

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The device address of the first element (256-byte aligned by the driver).</summary>
    public ulong DevicePointer
    {
        get
        {
            ThrowIfDisposed();
            return _pointer;
        }
    }

    /// <summary>Copies <paramref name="source"/> to the start of this buffer and waits for the copy.</summary>
    public void CopyFrom(ReadOnlySpan<T> source)
    {
        var bytes = PrefixBytes(source.Length, nameof(source));
        if (bytes == 0)
        {
            return;
        }
        Device.MakeCurrent();
        fixed (T* host = source)
        {
            CudaException.Check(CudaApi.cuMemcpyHtoD_v2(_pointer, host, bytes), $"Copying {bytes} bytes to {Describe()}");
        }
    }

    /// <summary>Copies the start of this buffer into <paramref name="destination"/> and waits for the copy.</summary>
    public void CopyTo(Span<T> destination)
    {
        var bytes = PrefixBytes(destination.Length, nameof(destination));
        if (bytes == 0)
        {
            return;
        }
        Device.MakeCurrent();
        fixed (T* host = destination)
        {
            CudaException.Check(CudaApi.cuMemcpyDtoH_v2(host, _pointer, bytes), $"Copying {bytes} bytes from {Describe()}");
        }
    }

    /// <summary>Copies the whole buffer to a new array.</summary>
    public T[] ToArray()
    {
        ThrowIfDisposed();
        if (Length > Array.MaxLength)
        {
            throw new InvalidOperationException($"{Describe()} is too long for one .NET array; copy it in parts with CopyTo.");
        }
        var result = new T[Length];
        CopyTo(result);
        return result;
    }

    /// <summary>Sets every byte to <paramref name="value"/>, e.g. to poison an output before a launch.</summary>
    public void FillBytes(byte value)
    {
        ThrowIfDisposed();
        Device.MakeCurrent();
        CudaException.Check(CudaApi.cuMemsetD8_v2(_pointer, value, (nuint)SizeInBytes), $"Filling {Describe()} with 0x{value:x2}");
    }

    /// <summary>Frees the memory. Safe to call twice; after the device is disposed, its context already freed it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || Device.IsDisposed)
        {
            return;
        }
        Device.MakeCurrent();
        CudaException.Check(CudaApi.cuMemFree_v2(_pointer), $"Freeing {Describe()}");
    }

    /// <inheritdoc/>
    public override string ToString() => Describe();

    /// <summary>Checks that <paramref name="count"/> elements fit in this buffer and returns their byte count.</summary>
    internal nuint PrefixBytes(int count, string argument)
    {
        ThrowIfDisposed();
        if (count > Length)
        {
            throw new ArgumentException($"'{argument}' has {count} elements but the device buffer holds only {Length}.", argument);
        }
        return (nuint)count * (nuint)Unsafe.SizeOf<T>();
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    private string Describe() =>
        string.Create(CultureInfo.InvariantCulture, $"a device buffer of {Length} {typeof(T).Name} ({SizeInBytes} bytes)");
}
