using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// The identity of a communicator to be (<c>ncclUniqueId</c>): one rank creates it (<see cref="NcclCommunicator.CreateUniqueId"/>)
/// and every rank joins with it. Between processes, send its bytes (or its base-64 <see cref="ToString"/>) by any means.
/// </summary>
public sealed class NcclUniqueId : IEquatable<NcclUniqueId>
{
    /// <summary>Its size in bytes (NCCL_UNIQUE_ID_BYTES).</summary>
    public const int Size = NcclUniqueIdBytes.Size;

    private readonly byte[] _bytes;

    private NcclUniqueId(byte[] bytes) => _bytes = bytes;

    public static NcclUniqueId FromBytes(ReadOnlySpan<byte> bytes) => bytes.Length == Size
        ? new NcclUniqueId(bytes.ToArray())
        : throw new ArgumentException($"An NCCL unique id has {Size} bytes; got {bytes.Length}.", nameof(bytes));

    /// <summary>The id from its base-64 text (<see cref="ToString"/>).</summary>
    public static NcclUniqueId Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = new byte[Size + 3];
        return Convert.TryFromBase64String(text, bytes, out var length) && length == Size
            ? new NcclUniqueId(bytes[..Size])
            : throw new ArgumentException($"Not an NCCL unique id: expected the base-64 text of {Size} bytes.", nameof(text));
    }

    public byte[] ToArray() => (byte[])_bytes.Clone();

    /// <summary>The bytes in base 64, to pass to other processes as text.</summary>
    public override string ToString() => Convert.ToBase64String(_bytes);

    public bool Equals(NcclUniqueId? other) => other is not null && _bytes.AsSpan().SequenceEqual(other._bytes);

    public override bool Equals(object? obj) => Equals(obj as NcclUniqueId);

    public override int GetHashCode() => BitConverter.ToInt32(_bytes, 0);

    internal unsafe NcclUniqueIdBytes ToNative()
    {
        var native = default(NcclUniqueIdBytes);
        _bytes.CopyTo(new Span<byte>(native.Internal, Size));
        return native;
    }

    internal static unsafe NcclUniqueId FromNative(in NcclUniqueIdBytes native)
    {
        fixed (byte* bytes = native.Internal)
        {
            return new NcclUniqueId(new ReadOnlySpan<byte>(bytes, Size).ToArray());
        }
    }
}
