using System.Buffers.Binary;
using System.Security.Cryptography;
using static System.FormattableString;

namespace KernelDsl;

/// <summary>
/// The on-disk form of one cached cubin, all integers little-endian:
/// magic "KDSLCUBN" (8) | format version (4) | key (32) | payload length (8) | SHA-256 of payload (32) | payload.
/// A reader trusts an entry only if every field checks out; anything else is treated as absent.
/// </summary>
internal static class CacheEntryFile
{
    public const int FormatVersion = 1;
    public const string Extension = ".cubin";

    private const int MagicOffset = 0;
    private const int VersionOffset = 8;
    private const int KeyOffset = 12;
    private const int LengthOffset = KeyOffset + CacheKey.Size;
    private const int HashOffset = LengthOffset + 8;
    public const int HeaderSize = HashOffset + SHA256.HashSizeInBytes;

    private static ReadOnlySpan<byte> Magic => "KDSLCUBN"u8;

    public static byte[] Encode(ReadOnlySpan<byte> key, ReadOnlySpan<byte> payload)
    {
        var file = new byte[HeaderSize + payload.Length];
        Magic.CopyTo(file.AsSpan(MagicOffset));
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(VersionOffset), FormatVersion);
        key.CopyTo(file.AsSpan(KeyOffset, CacheKey.Size));
        BinaryPrimitives.WriteInt64LittleEndian(file.AsSpan(LengthOffset), payload.Length);
        SHA256.HashData(payload, file.AsSpan(HashOffset, SHA256.HashSizeInBytes));
        payload.CopyTo(file.AsSpan(HeaderSize));
        return file;
    }

    /// <summary>The payload of a valid entry for <paramref name="key"/>, or null with the reason it was rejected.</summary>
    public static byte[]? Decode(ReadOnlySpan<byte> file, ReadOnlySpan<byte> key, out string problem)
    {
        problem = Check(file, key);
        return problem.Length == 0 ? file[HeaderSize..].ToArray() : null;
    }

    private static string Check(ReadOnlySpan<byte> file, ReadOnlySpan<byte> key)
    {
        if (file.Length < HeaderSize)
        {
            return Invariant($"it is {file.Length} bytes, shorter than the {HeaderSize}-byte header");
        }
        if (!file[..Magic.Length].SequenceEqual(Magic))
        {
            return "it does not start with the cache entry magic";
        }
        var version = BinaryPrimitives.ReadInt32LittleEndian(file[VersionOffset..]);
        if (version != FormatVersion)
        {
            return Invariant($"its format version is {version}, not {FormatVersion}");
        }
        if (!file.Slice(KeyOffset, CacheKey.Size).SequenceEqual(key))
        {
            return "it holds a different key";
        }
        var length = BinaryPrimitives.ReadInt64LittleEndian(file[LengthOffset..]);
        if (length != file.Length - HeaderSize)
        {
            return Invariant($"its header promises {length} payload bytes but {file.Length - HeaderSize} follow");
        }
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(file[HeaderSize..], hash);
        return hash.SequenceEqual(file.Slice(HashOffset, SHA256.HashSizeInBytes)) ? "" : "its payload does not match its SHA-256";
    }
}
