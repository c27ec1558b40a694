namespace KernelDsl.Launching;

/// <summary>
/// Argument checks shared by every generated launcher, so each rule is written once and every message
/// names the argument and the rule it broke. All of them run before anything reaches the GPU.
/// </summary>
public static class LaunchGuard
{
    public static void Buffer<T>(DeviceBuffer<T>? buffer, string name) where T : unmanaged
    {
        if (buffer is null)
        {
            throw new ArgumentNullException(name, $"'{name}' must be a device buffer, not null.");
        }
        if (buffer.IsDisposed)
        {
            throw new ObjectDisposedException(name, $"'{name}' was disposed; a launch needs a live device buffer.");
        }
    }

    public static void Stream(CudaStream? stream, string name)
    {
        if (stream is null)
        {
            throw new ArgumentNullException(name, $"'{name}' must be a CUDA stream, not null.");
        }
        if (stream.IsDisposed)
        {
            throw new ObjectDisposedException(name, $"'{name}' was disposed.");
        }
    }

    public static void Positive(long value, string name)
    {
        if (value < 1)
        {
            throw new ArgumentOutOfRangeException(name, value, $"'{name}' must be at least 1.");
        }
    }

    /// <summary>A modifier's [Positive] float: greater than zero and finite (NaN is neither).</summary>
    public static bool IsPositive(float value) => value > 0f && float.IsFinite(value);

    /// <summary>A modifier's [Positive] float (<see cref="IsPositive(float)"/>).</summary>
    public static void Positive(float value, string name)
    {
        if (!IsPositive(value))
        {
            throw new ArgumentOutOfRangeException(name, value, $"'{name}' must be positive and finite: its modifier declares it [Positive].");
        }
    }

    public static void AtLeast(long value, long minimum, string name, string what)
    {
        if (value < minimum)
        {
            throw new ArgumentOutOfRangeException(name, value, $"'{name}' must be at least {what} ({minimum}).");
        }
    }

    public static void AtMost(long value, long maximum, string name, string why)
    {
        if (value > maximum)
        {
            throw new ArgumentOutOfRangeException(name, value, $"'{name}' must be at most {maximum}: {why}.");
        }
    }

    public static void MultipleOf(long value, int multiple, string name, string why)
    {
        if (value % multiple != 0)
        {
            throw new ArgumentException($"'{name}' = {value} must be a multiple of {multiple}: {why}.", name);
        }
    }

    public static void Equal(long value, long expected, string name, string what)
    {
        if (value != expected)
        {
            throw new ArgumentException($"'{name}' = {value} must equal {what} ({expected}).", name);
        }
    }

    public static void Fits(long value, string name)
    {
        if (value > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(name, value, $"'{name}' must fit in a 32-bit int for this kernel's index math.");
        }
    }

    /// <summary>The buffer's base must be aligned for the kernel's vector accesses (cp.async moves 16 bytes).</summary>
    public static void Aligned<T>(DeviceBuffer<T> buffer, int bytes, string name) where T : unmanaged
    {
        if (buffer.DevicePointer % (ulong)bytes != 0)
        {
            throw new ArgumentException($"'{name}' must be {bytes}-byte aligned; its device address is 0x{buffer.DevicePointer:x}.", name);
        }
    }

    /// <summary>A scale the kernel multiplies by must be a finite positive number (NaN fails too).</summary>
    public static void FinitePositive(float value, string name)
    {
        if (!(value > 0f) || float.IsInfinity(value))
        {
            throw new ArgumentOutOfRangeException(name, value, $"'{name}' must be a finite positive number.");
        }
    }

    /// <summary>The buffer must hold at least <paramref name="elements"/> elements for the shape given.</summary>
    public static void Holds<T>(DeviceBuffer<T> buffer, long elements, string name, string shape) where T : unmanaged
    {
        if (buffer.Length < elements)
        {
            throw new ArgumentException($"'{name}' holds {buffer.Length} elements but {shape} needs {elements}.", name);
        }
    }
}
