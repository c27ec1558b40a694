using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace KernelDsl;

/// <summary>
/// SHA-256 over everything that decides the cubin: the source, the architecture, every NVRTC option and the NVRTC
/// version. Each field is length-prefixed so that no two different inputs can run together into the same bytes.
/// </summary>
internal static class CacheKey
{
    public const int Size = 32;

    // Bump when the key's inputs change meaning, so old entries simply stop matching.
    private const string Scheme = "kerneldsl-module-key/1";

    public static byte[] Compute(NvrtcRequest request, NvrtcVersion compilerVersion)
    {
        var options = request.EffectiveOptions();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Append(hash, Scheme);
        Append(hash, request.Source);
        Append(hash, request.Arch);
        Append(hash, options.Count);
        foreach (var option in options)
        {
            Append(hash, option);
        }
        Append(hash, compilerVersion.Major);
        Append(hash, compilerVersion.Minor);
        return hash.GetHashAndReset();
    }

    private static void Append(IncrementalHash hash, string field)
    {
        var bytes = Encoding.UTF8.GetBytes(field);
        Append(hash, bytes.Length);
        hash.AppendData(bytes);
    }

    private static void Append(IncrementalHash hash, int value)
    {
        Span<byte> bytes = stackalloc byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        hash.AppendData(bytes);
    }
}
