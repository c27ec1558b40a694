using System.Runtime.InteropServices;

namespace KernelDsl.Native;

/// <summary>
/// The CUDA driver API entry points this runtime uses, each bound by its exported (versioned) symbol name
/// so the ABI is the one the declaration describes. Handles are opaque pointers; device pointers are 64-bit.
/// Never call these before <see cref="NativeLibraries.CudaDriver"/> has loaded the library.
/// </summary>
internal static unsafe partial class CudaApi
{
    private const string Lib = NativeLibraries.Cuda;

    [LibraryImport(Lib)] public static partial CuResult cuInit(uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuDriverGetVersion(out int version);
    [LibraryImport(Lib)] public static partial CuResult cuGetErrorName(CuResult error, out nint name);
    [LibraryImport(Lib)] public static partial CuResult cuGetErrorString(CuResult error, out nint description);

    [LibraryImport(Lib)] public static partial CuResult cuDeviceGetCount(out int count);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGetAttribute(out int value, CuDeviceAttribute attribute, int device);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceTotalMem_v2(out nuint bytes, int device);

    [LibraryImport(Lib)] public static partial CuResult cuDevicePrimaryCtxRetain(out nint context, int device);
    [LibraryImport(Lib)] public static partial CuResult cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(Lib)] public static partial CuResult cuCtxSetCurrent(nint context);
    [LibraryImport(Lib)] public static partial CuResult cuCtxSynchronize();

    [LibraryImport(Lib)] public static partial CuResult cuMemGetInfo_v2(out nuint free, out nuint total);
    [LibraryImport(Lib)] public static partial CuResult cuMemAlloc_v2(out ulong devicePointer, nuint bytes);
    [LibraryImport(Lib)] public static partial CuResult cuMemFree_v2(ulong devicePointer);
    [LibraryImport(Lib)] public static partial CuResult cuMemHostAlloc(out nint pointer, nuint bytes, uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuMemHostGetDevicePointer_v2(out ulong devicePointer, nint hostPointer, uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuMemFreeHost(nint pointer);
    [LibraryImport(Lib)] public static partial CuResult cuMemcpyHtoD_v2(ulong destination, void* source, nuint bytes);
    [LibraryImport(Lib)] public static partial CuResult cuMemcpyDtoH_v2(void* destination, ulong source, nuint bytes);
    [LibraryImport(Lib)] public static partial CuResult cuMemcpyHtoDAsync_v2(ulong destination, void* source, nuint bytes, nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuMemcpyDtoHAsync_v2(void* destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuMemcpyDtoDAsync_v2(ulong destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuMemcpy2DAsync_v2(CudaMemcpy2D* copy, nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuMemsetD8_v2(ulong destination, byte value, nuint count);
    [LibraryImport(Lib)] public static partial CuResult cuMemsetD8Async(ulong destination, byte value, nuint count, nint stream);

    [LibraryImport(Lib)] public static partial CuResult cuModuleLoadData(out nint module, void* image);

    // TMA descriptors (sm_90, CUDA 12): enum arguments are plain ints with the CUtensorMap* values of TensorMap.cs.
    [LibraryImport(Lib)]
    public static partial CuResult cuTensorMapEncodeTiled(
        void* tensorMap, int dataType, uint rank, ulong globalAddress, ulong* globalDim, ulong* globalStrides,
        uint* boxDim, uint* elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill);
    [LibraryImport(Lib)] public static partial CuResult cuModuleUnload(nint module);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial CuResult cuModuleGetFunction(out nint function, nint module, string name);
    [LibraryImport(Lib)] public static partial CuResult cuFuncSetAttribute(nint function, CuFunctionAttribute attribute, int value);
    [LibraryImport(Lib)] public static partial CuResult cuFuncGetAttribute(out int value, CuFunctionAttribute attribute, nint function);
    [LibraryImport(Lib)]
    public static partial CuResult cuOccupancyMaxActiveBlocksPerMultiprocessor(out int blocks, nint function, int blockSize, nuint dynamicSharedMemoryBytes);
    [LibraryImport(Lib)]
    public static partial CuResult cuLaunchKernel(
        nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, nint stream, nint kernelParameters, nint extra);
    /// <summary>CUDA 12: a launch with attributes (programmatic dependent launch, for <see cref="CudaStream.LaunchDependent"/>).</summary>
    [LibraryImport(Lib)] public static partial CuResult cuLaunchKernelEx(CuLaunchConfig* config, nint function, nint kernelParameters, nint extra);

    [LibraryImport(Lib)] public static partial CuResult cuStreamCreate(out nint stream, uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuStreamDestroy_v2(nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuStreamSynchronize(nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuStreamQuery(nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuStreamWaitEvent(nint stream, nint cudaEvent, uint flags);

    [LibraryImport(Lib)] public static partial CuResult cuEventCreate(out nint cudaEvent, uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuEventRecord(nint cudaEvent, nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuEventSynchronize(nint cudaEvent);
    [LibraryImport(Lib)] public static partial CuResult cuEventElapsedTime(out float milliseconds, nint start, nint end);
    [LibraryImport(Lib)] public static partial CuResult cuEventDestroy_v2(nint cudaEvent);
}
