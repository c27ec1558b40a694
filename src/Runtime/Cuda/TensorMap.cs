using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KernelDsl.Native;

namespace KernelDsl;

/// <summary>How TMA swizzles a box in shared memory (CUtensorMapSwizzle); the box's inner row may span at most that many bytes.</summary>
public enum TensorMapSwizzle
{
    None = 0,
    Bytes32 = 1,
    Bytes64 = 2,
    Bytes128 = 3,
}

/// <summary>
/// A TMA descriptor (<c>CUtensorMap</c>): 128 opaque bytes that <c>cuTensorMapEncodeTiled</c> fills in on the host and a
/// kernel takes by value as a <c>const __grid_constant__</c> parameter (pass it with <see cref="Launching.KernelArguments.AddValue{T}"/>).
/// Dimensions are innermost first, as the driver wants: a row-major [rows][cols] matrix is dims {cols, rows}.
/// Out-of-bounds parts of a box are zero-filled. Elements are copied as raw bits (UINT8/16/32/64 by size).
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 128)]
public struct TensorMap
{
    private Opaque _words;

    [InlineArray(16)]
    private struct Opaque
    {
        private ulong _word;
    }

    /// <summary>The rank the hardware supports.</summary>
    public const int MaxRank = 5;

    /// <summary>Checks the descriptor rules (they throw <see cref="ArgumentException"/> naming the argument) and encodes the map.</summary>
    /// <param name="buffer">The tensor's memory; the view starts at its first element.</param>
    /// <param name="dims">Elements per dimension, innermost first.</param>
    /// <param name="strides">Bytes between consecutive indices of dimensions 1.. (rank − 1 entries).</param>
    /// <param name="box">The box one copy moves, elements per dimension, innermost first.</param>
    /// <param name="swizzle">How the box lands in shared memory; the inner row must fit the swizzle's span.</param>
    public static unsafe TensorMap EncodeTiled<T>(DeviceBuffer<T> buffer, ReadOnlySpan<long> dims, ReadOnlySpan<long> strides, ReadOnlySpan<int> box,
        TensorMapSwizzle swizzle = TensorMapSwizzle.None) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer);
        var elementBytes = Unsafe.SizeOf<T>();
        Validate(elementBytes, buffer.DevicePointer, buffer.SizeInBytes, dims, strides, box, swizzle);
        var rank = dims.Length;
        Span<ulong> globalDims = stackalloc ulong[rank], globalStrides = stackalloc ulong[rank];
        Span<uint> boxDims = stackalloc uint[rank], elementStrides = stackalloc uint[rank];
        for (var i = 0; i < rank; i++)
        {
            globalDims[i] = (ulong)dims[i];
            globalStrides[i] = i < rank - 1 ? (ulong)strides[i] : 0;
            boxDims[i] = (uint)box[i];
            elementStrides[i] = 1;
        }
        var dataType = elementBytes switch { 1 => 0, 2 => 1, 4 => 2, _ => 4 };  // UINT8, UINT16, UINT32, UINT64
        // The driver wants the descriptor 64-byte aligned (CUtensorMap is declared 128-aligned); a .NET local is not,
        // so encode into aligned native memory and copy the bytes out (a kernel argument is copied by value anyway).
        var aligned = (TensorMap*)NativeMemory.AlignedAlloc((nuint)sizeof(TensorMap), 128);
        try
        {
            fixed (ulong* d = globalDims, s = globalStrides)
            fixed (uint* b = boxDims, e = elementStrides)
            {
                // Interleave none, L2 promotion 128 B, out-of-bounds elements filled with zeros.
                CudaException.Check(CudaApi.cuTensorMapEncodeTiled(aligned, dataType, (uint)rank, buffer.DevicePointer, d, s, b, e, 0, (int)swizzle, 2, 0),
                    string.Create(CultureInfo.InvariantCulture, $"Encoding a rank-{rank} tensor map over {buffer.SizeInBytes} bytes"));
            }
            return *aligned;
        }
        finally
        {
            NativeMemory.AlignedFree(aligned);
        }
    }

    /// <summary>The rules of cuTensorMapEncodeTiled, checked before the driver sees them, each naming its argument.</summary>
    internal static void Validate(int elementBytes, ulong address, long bufferBytes, ReadOnlySpan<long> dims, ReadOnlySpan<long> strides, ReadOnlySpan<int> box, TensorMapSwizzle swizzle)
    {
        static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        var rank = dims.Length;
        if (rank is < 1 or > MaxRank)
        {
            throw new ArgumentException(F($"A tensor map has 1 to {MaxRank} dimensions, not {rank}."), nameof(dims));
        }
        if (elementBytes is not (1 or 2 or 4 or 8))
        {
            throw new ArgumentException(F($"TMA copies 1-, 2-, 4- or 8-byte elements, not {elementBytes}-byte ones."), "T");
        }
        if (address % 16 != 0)
        {
            throw new ArgumentException(F($"The tensor's address must be 16-byte aligned; it is {address} (mod 16 = {address % 16})."), "buffer");
        }
        for (var i = 0; i < rank; i++)
        {
            if (dims[i] < 1 || dims[i] > 1L << 32)
            {
                throw new ArgumentException(F($"'dims'[{i}] = {dims[i]}; each must be 1 to 2^32."), nameof(dims));
            }
        }
        if (strides.Length != rank - 1)
        {
            throw new ArgumentException(F($"'strides' needs rank − 1 = {rank - 1} entries (dimension 0 is contiguous), not {strides.Length}."), nameof(strides));
        }
        for (var i = 0; i < strides.Length; i++)
        {
            if (strides[i] <= 0 || strides[i] % 16 != 0 || strides[i] >= 1L << 40)
            {
                throw new ArgumentException(F($"'strides'[{i}] = {strides[i]} bytes; each must be a positive multiple of 16 below 2^40."), nameof(strides));
            }
        }
        var last = (dims[0] - 1) * elementBytes;
        for (var i = 1; i < rank; i++)
        {
            last += (dims[i] - 1) * strides[i - 1];
        }
        if (last + elementBytes > bufferBytes)
        {
            throw new ArgumentException(F($"The tensor reaches byte {last + elementBytes}, but the buffer holds {bufferBytes}."), nameof(dims));
        }
        if (box.Length != rank)
        {
            throw new ArgumentException(F($"'box' needs one entry per dimension ({rank}), not {box.Length}."), nameof(box));
        }
        for (var i = 0; i < rank; i++)
        {
            if (box[i] is < 1 or > 256)
            {
                throw new ArgumentException(F($"'box'[{i}] = {box[i]}; each must be 1 to 256 elements."), nameof(box));
            }
        }
        var innerBytes = box[0] * elementBytes;
        if (innerBytes % 16 != 0)
        {
            throw new ArgumentException(F($"The box's inner row is {innerBytes} bytes; it must be a multiple of 16."), nameof(box));
        }
        var span = swizzle switch { TensorMapSwizzle.Bytes32 => 32, TensorMapSwizzle.Bytes64 => 64, TensorMapSwizzle.Bytes128 => 128, _ => int.MaxValue };
        if (innerBytes > span)
        {
            throw new ArgumentException(F($"With {swizzle} the box's inner row may span at most {span} bytes; it is {innerBytes}."), nameof(box));
        }
    }
}
