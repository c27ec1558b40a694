namespace KernelDsl;

/// <summary>A successful NVRTC compilation.</summary>
/// <param name="Cubin">The cubin, ready for <c>cuModuleLoadData</c>.</param>
/// <param name="Log">NVRTC's log (warnings, and the ptxas report when asked for).</param>
/// <param name="Kernels">The ptxas report per entry function; empty unless the request asked for it.</param>
/// <param name="Ptx">The intermediate PTX when the request asked to keep it; otherwise null.</param>
/// <param name="Elapsed">Wall time of the compilation.</param>
public sealed record NvrtcResult(
    byte[] Cubin,
    string Log,
    IReadOnlyList<PtxasKernelReport> Kernels,
    string? Ptx,
    TimeSpan Elapsed);

/// <summary>What ptxas reported for one entry function (<c>--ptxas-options=-v</c>).</summary>
/// <param name="Name">The function's symbol name (the <c>extern "C"</c> kernel name).</param>
/// <param name="Arch">The architecture it was compiled for.</param>
/// <param name="Registers">Registers per thread.</param>
/// <param name="StackFrameBytes">Local-memory stack frame per thread.</param>
/// <param name="SpillStoreBytes">Bytes of register spill stores.</param>
/// <param name="SpillLoadBytes">Bytes of register spill loads.</param>
/// <param name="SharedMemoryBytes">Static shared memory (dynamic shared memory is not counted).</param>
/// <param name="ConstantMemoryBytes">Constant bank 0 (parameters), when reported.</param>
public sealed record PtxasKernelReport(
    string Name,
    string Arch,
    int Registers,
    int StackFrameBytes,
    int SpillStoreBytes,
    int SpillLoadBytes,
    int SharedMemoryBytes,
    int ConstantMemoryBytes)
{
    /// <summary>Whether ptxas had to spill registers to local memory.</summary>
    public bool Spills => SpillStoreBytes > 0 || SpillLoadBytes > 0;
}
