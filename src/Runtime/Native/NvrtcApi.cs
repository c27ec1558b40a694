using System.Runtime.InteropServices;

namespace KernelDsl.Native;

/// <summary>NVRTC's <c>nvrtcResult</c>.</summary>
internal enum NvrtcStatus
{
    Success = 0,
    OutOfMemory = 1,
    ProgramCreationFailure = 2,
    InvalidInput = 3,
    InvalidProgram = 4,
    InvalidOption = 5,
    Compilation = 6,
    BuiltinOperationFailure = 7,
    InternalError = 11,
}

/// <summary>
/// The NVRTC entry points this runtime uses. Never call these before <see cref="NativeLibraries.NvrtcLibrary"/>
/// has loaded the library.
/// </summary>
internal static unsafe partial class NvrtcApi
{
    private const string Lib = NativeLibraries.Nvrtc;

    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcVersion(out int major, out int minor);
    [LibraryImport(Lib)] public static partial nint nvrtcGetErrorString(NvrtcStatus status);
    // Since CUDA 11.2: the real architectures (compute capabilities, e.g. 80) this NVRTC compiles for.
    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcGetNumSupportedArchs(out int count);
    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcGetSupportedArchs(int* archs);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial NvrtcStatus nvrtcCreateProgram(
        out nint program, string source, string name, int headerCount, nint headers, nint includeNames);
    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcCompileProgram(nint program, int optionCount, byte** options);
    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcGetProgramLogSize(nint program, out nuint size);
    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcGetProgramLog(nint program, byte* log);
    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcGetCUBINSize(nint program, out nuint size);
    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcGetCUBIN(nint program, byte* cubin);
    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcGetPTXSize(nint program, out nuint size);
    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcGetPTX(nint program, byte* ptx);
    [LibraryImport(Lib)] public static partial NvrtcStatus nvrtcDestroyProgram(ref nint program);
}
