using System.Runtime.InteropServices;

namespace KernelDsl.Native;

/// <summary>NCCL's <c>ncclUniqueId</c>: 128 opaque bytes, passed by value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NcclUniqueIdBytes
{
    public const int Size = 128;
    public fixed byte Internal[Size];
}

/// <summary>
/// The leading fields of <c>ncclConfig_t</c> as NCCL 2.14 defined it. NCCL reads <c>size</c> bytes of the caller's
/// struct and takes its defaults for every field a struct of <c>version</c> lacks, so this prefix stays valid in later
/// versions (src/init.cc, parseCommConfig).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NcclConfig
{
    public nuint Size;
    public uint Magic;
    public uint Version;
    public int Blocking;

    /// <summary>NCCL_CONFIG_INITIALIZER's magic (NCCL_API_MAGIC).</summary>
    public const uint ApiMagic = 0xcafebeef;

    /// <summary>A nonblocking communicator's configuration: calls may return ncclInProgress, and init can be waited on with a timeout.</summary>
    public static unsafe NcclConfig Nonblocking => new()
    {
        Size = (nuint)sizeof(NcclConfig),
        Magic = ApiMagic,
        Version = (uint)NcclVersion.Minimum.Code,
        Blocking = 0,
    };
}

/// <summary>NCCL's <c>ncclDataType_t</c>; the collectives bound here move bytes, so only <see cref="Uint8"/> is used.</summary>
internal enum NcclDataType
{
    Uint8 = 1,
}

/// <summary>
/// The NCCL entry points this runtime uses. Communicators and streams are opaque pointers, device buffers 64-bit
/// addresses. Never call these before <see cref="NativeLibraries.NcclLibrary"/> has loaded the library.
/// </summary>
internal static unsafe partial class NcclApi
{
    private const string Lib = NativeLibraries.Nccl;

    [LibraryImport(Lib)] public static partial NcclResult ncclGetVersion(out int version);
    [LibraryImport(Lib)] public static partial nint ncclGetErrorString(NcclResult result);
    [LibraryImport(Lib)] public static partial nint ncclGetLastError(nint comm);
    [LibraryImport(Lib)] public static partial NcclResult ncclGetUniqueId(out NcclUniqueIdBytes uniqueId);
    [LibraryImport(Lib)] public static partial NcclResult ncclCommInitRankConfig(out nint comm, int ranks, NcclUniqueIdBytes commId, int rank, NcclConfig* config);
    [LibraryImport(Lib)] public static partial NcclResult ncclCommInitAll(nint* comms, int devices, int* deviceList);
    [LibraryImport(Lib)] public static partial NcclResult ncclCommFinalize(nint comm);
    [LibraryImport(Lib)] public static partial NcclResult ncclCommDestroy(nint comm);
    [LibraryImport(Lib)] public static partial NcclResult ncclCommAbort(nint comm);
    [LibraryImport(Lib)] public static partial NcclResult ncclCommGetAsyncError(nint comm, out NcclResult asyncError);
    [LibraryImport(Lib)] public static partial NcclResult ncclGroupStart();
    [LibraryImport(Lib)] public static partial NcclResult ncclGroupEnd();
    [LibraryImport(Lib)] public static partial NcclResult ncclSend(ulong sendBuffer, nuint count, NcclDataType type, int peer, nint comm, nint stream);
    [LibraryImport(Lib)] public static partial NcclResult ncclRecv(ulong receiveBuffer, nuint count, NcclDataType type, int peer, nint comm, nint stream);
    [LibraryImport(Lib)] public static partial NcclResult ncclAllGather(ulong sendBuffer, ulong receiveBuffer, nuint sendCount, NcclDataType type, nint comm, nint stream);
}
