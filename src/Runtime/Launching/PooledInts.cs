using System.Buffers;

namespace KernelDsl.Launching;

/// <summary>
/// Ints in an array lent by the shared pool: a launcher's host-side work list, built on every call and copied to the device
/// at once. Dispose it once, when copied (a second dispose of the same value, or of a copy of it, would lend the array twice).
/// </summary>
public readonly struct PooledInts : IDisposable
{
    private readonly int[] _rented;

    internal PooledInts(int length) => (_rented, Length) = (ArrayPool<int>.Shared.Rent(Math.Max(1, length)), length);

    public int Length { get; }
    public ReadOnlySpan<int> Span => _rented.AsSpan(0, Length);
    internal Span<int> Writable => _rented.AsSpan(0, Length);

    public void Dispose()
    {
        if (_rented is not null)
        {
            ArrayPool<int>.Shared.Return(_rented);
        }
    }
}
