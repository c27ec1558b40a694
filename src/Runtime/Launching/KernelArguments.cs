using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KernelDsl.Launching;

/// <summary>
/// The parameter block of one launch, built in declaration order. Each value is copied into its own
/// naturally aligned slot; <see cref="CudaStream.Launch"/> passes a pointer to each slot to <c>cuLaunchKernel</c>.
/// Generated launchers build these, so user assemblies need no unsafe code.
/// </summary>
public sealed class KernelArguments
{
    private byte[] _storage = new byte[128];
    private readonly List<int> _offsets = [];
    private int _size;

    public int Count => _offsets.Count;

    /// <summary>A device buffer passes its device pointer.</summary>
    public KernelArguments Add<T>(DeviceBuffer<T> buffer) where T : unmanaged => AddValue(buffer.DevicePointer);

    public KernelArguments Add(int value) => AddValue(value);

    public KernelArguments Add(long value) => AddValue(value);

    public KernelArguments Add(float value) => AddValue(value);

    /// <summary>A null device pointer, for an optional argument left out.</summary>
    public KernelArguments AddNullPointer() => AddValue(0UL);

    public KernelArguments AddValue<T>(T value) where T : unmanaged
    {
        var size = Unsafe.SizeOf<T>();
        var offset = (_size + size - 1) / size * size;
        if (offset + size > _storage.Length)
        {
            Array.Resize(ref _storage, Math.Max(_storage.Length * 2, offset + size));
        }
        MemoryMarshal.Write(_storage.AsSpan(offset, size), in value);
        _offsets.Add(offset);
        _size = offset + size;
        return this;
    }

    /// <summary>Calls <paramref name="use"/> with a pointer array (one pointer per argument) valid for the call's duration.</summary>
    internal unsafe void WithPointers(Action<nint> use)
    {
        fixed (byte* storage = _storage)
        {
            var pointers = stackalloc nint[Math.Max(1, _offsets.Count)];
            for (var i = 0; i < _offsets.Count; i++)
            {
                pointers[i] = (nint)(storage + _offsets[i]);
            }
            use((nint)pointers);
        }
    }

    /// <summary>The bytes of argument <paramref name="index"/>, for tests.</summary>
    internal ReadOnlySpan<byte> ArgumentBytes(int index, int size) => _storage.AsSpan(_offsets[index], size);
}
