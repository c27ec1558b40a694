namespace KernelDsl.Native;

/// <summary>The <c>CUdevice_attribute</c> values this runtime reads.</summary>
internal enum CuDeviceAttribute
{
    MaxSharedMemoryPerBlock = 8,
    MaxPitch = 11,
    MultiprocessorCount = 16,
    CanMapHostMemory = 19,
    L2CacheSize = 38,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
    MaxSharedMemoryPerBlockOptin = 97,
}

/// <summary>The <c>CUfunction_attribute</c> values this runtime reads or sets.</summary>
internal enum CuFunctionAttribute
{
    MaxThreadsPerBlock = 0,
    SharedSizeBytes = 1,
    LocalSizeBytes = 3,
    NumRegs = 4,
    MaxDynamicSharedSizeBytes = 8,
}

/// <summary>
/// <c>CUDA_MEMCPY2D</c>: a copy of <see cref="Height"/> rows of <see cref="WidthInBytes"/>, each side with its own pitch.
/// Host and array fields stay zero: this runtime copies device to device only.
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
internal struct CudaMemcpy2D
{
    /// <summary><c>CU_MEMORYTYPE_DEVICE</c>.</summary>
    public const int DeviceMemory = 2;

    public nuint SrcXInBytes;
    public nuint SrcY;
    public int SrcMemoryType;
    public nint SrcHost;
    public ulong SrcDevice;
    public nint SrcArray;
    public nuint SrcPitch;
    public nuint DstXInBytes;
    public nuint DstY;
    public int DstMemoryType;
    public nint DstHost;
    public ulong DstDevice;
    public nint DstArray;
    public nuint DstPitch;
    public nuint WidthInBytes;
    public nuint Height;
}

/// <summary>
/// <c>CUlaunchAttribute</c> (CUDA 12): an attribute id, padding to 8 bytes, then a 64-byte union of which this runtime sets
/// one int (<see cref="Value"/>).
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 72)]
internal struct CuLaunchAttribute
{
    /// <summary><c>CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION</c>: the kernel may start before the one queued before it ends.</summary>
    public const int ProgrammaticStreamSerialization = 6;

    [System.Runtime.InteropServices.FieldOffset(0)] public int Id;
    [System.Runtime.InteropServices.FieldOffset(8)] public int Value;
}

/// <summary><c>CUlaunchConfig</c> (CUDA 12): <c>cuLaunchKernelEx</c>'s grid, block, shared memory, stream and attributes.</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
internal unsafe struct CuLaunchConfig
{
    public uint GridX, GridY, GridZ, BlockX, BlockY, BlockZ, SharedMemoryBytes;
    public nint Stream;
    public CuLaunchAttribute* Attributes;
    public uint AttributeCount;
}
