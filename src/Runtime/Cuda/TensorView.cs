using System.Collections.Immutable;
using static System.FormattableString;

namespace KernelDsl;

/// <summary>
/// A strided view of a device buffer: a shape and per-dimension strides, both in elements. The innermost
/// dimension must be contiguous (stride 1), which is what vectorized and cp.async loads need.
/// </summary>
public readonly record struct TensorView<T> where T : unmanaged
{
    /// <summary>A view of <paramref name="buffer"/>; checks that every addressed element lies inside it.</summary>
    public TensorView(DeviceBuffer<T> buffer, long[] shape, long[] strides)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(strides);
        Validate(buffer.Length, shape, strides);
        Buffer = buffer;
        Shape = [.. shape];
        Strides = [.. strides];
    }

    /// <summary>The buffer viewed.</summary>
    public DeviceBuffer<T> Buffer { get; }

    /// <summary>Extent per dimension, outermost first.</summary>
    public ImmutableArray<long> Shape { get; }

    /// <summary>Stride per dimension in elements; the last is 1.</summary>
    public ImmutableArray<long> Strides { get; }

    /// <summary>Number of dimensions.</summary>
    public int Rank => Shape.Length;

    /// <summary>Number of elements addressed.</summary>
    public long ElementCount => Shape.Aggregate(1L, (product, extent) => checked(product * extent));

    /// <summary>A row-major (C order) view of the start of <paramref name="buffer"/>.</summary>
    public static TensorView<T> Contiguous(DeviceBuffer<T> buffer, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var strides = new long[shape.Length];
        var stride = 1L;
        for (var i = shape.Length - 1; i >= 0; i--)
        {
            strides[i] = stride;
            stride = checked(stride * Math.Max(shape[i], 1));
        }
        return new TensorView<T>(buffer, shape, strides);
    }

    /// <summary>The checks of the constructor, apart from the buffer itself (testable without a device).</summary>
    internal static void Validate(long bufferLength, long[] shape, long[] strides)
    {
        if (shape.Length == 0)
        {
            throw new ArgumentException("A tensor view needs at least one dimension.", nameof(shape));
        }
        if (strides.Length != shape.Length)
        {
            throw new ArgumentException($"'{nameof(strides)}' has {strides.Length} entries but '{nameof(shape)}' has {shape.Length}.", nameof(strides));
        }
        for (var i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 1)
            {
                throw new ArgumentException(Invariant($"'{nameof(shape)}'[{i}] = {shape[i]}; every extent must be at least 1."), nameof(shape));
            }
            if (strides[i] < 0)
            {
                throw new ArgumentException(Invariant($"'{nameof(strides)}'[{i}] = {strides[i]}; strides must not be negative."), nameof(strides));
            }
        }
        if (strides[^1] != 1)
        {
            throw new ArgumentException(Invariant($"The last stride is {strides[^1]}; the innermost dimension must be contiguous (stride 1)."), nameof(strides));
        }
        var lastOffset = LastOffset(shape, strides);
        if (lastOffset >= bufferLength)
        {
            throw new ArgumentException(Invariant($"Shape [{string.Join(", ", shape)}] with strides [{string.Join(", ", strides)}] reaches element {lastOffset}, but the buffer holds {bufferLength}."), nameof(shape));
        }
    }

    private static long LastOffset(long[] shape, long[] strides)
    {
        var offset = 0L;
        for (var i = 0; i < shape.Length; i++)
        {
            offset = checked(offset + (shape[i] - 1) * strides[i]);
        }
        return offset;
    }
}
