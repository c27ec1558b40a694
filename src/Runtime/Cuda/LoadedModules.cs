using System.Globalization;
using KernelDsl.Launching;
using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// A kernel function resolved in a loaded module, with the entry point it was generated from. A class, not a record: it is
/// one resolved handle, and it caches what the driver says about it.
/// </summary>
internal sealed class LoadedFunction(nint handle, KernelEntryPoint entry)
{
    private int _residentBlocksPerSm = -1;

    public nint Handle => handle;

    public KernelEntryPoint Entry => entry;

    /// <summary>
    /// Blocks of this kernel one SM holds at once, by the driver's occupancy calculator (its registers, shared memory and
    /// threads per block), asked once: a decode step sizes its grid with it on every call. The context must be current;
    /// <paramref name="module"/> and <paramref name="device"/> only name the kernel in an error.
    /// </summary>
    public int ResidentBlocksPerSm(string module, int device)
    {
        if (Volatile.Read(ref _residentBlocksPerSm) is var known and >= 0)
        {
            return known;
        }
        CudaException.Check(CudaApi.cuOccupancyMaxActiveBlocksPerMultiprocessor(out var blocks, Handle, Entry.ThreadsPerBlock, (nuint)Entry.SharedMemoryBytes),
            $"Reading the occupancy of kernel '{Entry.Name}' of '{module}' on device {device}");
        Volatile.Write(ref _residentBlocksPerSm, blocks);
        return blocks;
    }

    /// <summary>What the compiled kernel needs per block, for launch failures such as too many resources requested.</summary>
    public string DescribeResources() => string.Create(CultureInfo.InvariantCulture,
        $"The compiled kernel uses {Attribute(CuFunctionAttribute.NumRegs)} registers per thread, {Attribute(CuFunctionAttribute.SharedSizeBytes)} bytes of static shared memory and {Attribute(CuFunctionAttribute.LocalSizeBytes)} bytes of local memory per thread, and allows at most {Attribute(CuFunctionAttribute.MaxThreadsPerBlock)} threads per block.");

    private string Attribute(CuFunctionAttribute attribute) =>
        CudaApi.cuFuncGetAttribute(out var value, attribute, Handle) == CuResult.Success
            ? value.ToString(CultureInfo.InvariantCulture)
            : "?";
}

/// <summary>
/// The CUmodules loaded into one device's primary context, keyed by module definition instance (generated code
/// keeps one per variant), so a launch after the first costs two dictionary lookups and no hashing of source.
/// </summary>
internal sealed unsafe class LoadedModules(CudaDevice device) : IDisposable
{
    private readonly OnceByKey<KernelModuleDefinition, LoadedModule> _modules = new(ReferenceEqualityComparer.Instance);

    public LoadedFunction Function(KernelModuleDefinition module, string entryPoint)
    {
        var entry = module.EntryPoint(entryPoint);
        return _modules.GetOrCreate(module, Load, out _).Function(entry);
    }

    public void Dispose()
    {
        foreach (var module in _modules.Created)
        {
            _ = CudaApi.cuModuleUnload(module.Handle);
        }
        _modules.Clear();
    }

    private LoadedModule Load(KernelModuleDefinition module)
    {
        var arch = KernelTarget.Select(module, device.ComputeCapability, device.Name);
        var image = device.Modules.GetOrCompile(NvrtcRequest.ForModule(module, arch));
        device.MakeCurrent();
        nint handle;
        fixed (byte* cubin = image.Cubin.Span)
        {
            CudaException.Check(CudaApi.cuModuleLoadData(out handle, cubin),
                string.Create(CultureInfo.InvariantCulture, $"Loading the {arch} cubin of '{module.Name}' ({image.Cubin.Length} bytes) on device {device.Ordinal}"));
        }
        return new LoadedModule(device, module.Name, handle);
    }
}

/// <summary>One loaded CUmodule and the functions resolved from it so far.</summary>
internal sealed class LoadedModule(CudaDevice device, string variant, nint handle)
{
    // Above this, a kernel must opt in to more dynamic shared memory (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES).
    private const int DefaultDynamicSharedMemoryLimit = 48 * 1024;

    private readonly OnceByKey<string, LoadedFunction> _functions = new(StringComparer.Ordinal);

    public nint Handle => handle;

    public LoadedFunction Function(KernelEntryPoint entry) => _functions.GetOrCreate(entry.Name, _ => Resolve(entry), out _);

    private LoadedFunction Resolve(KernelEntryPoint entry)
    {
        device.MakeCurrent();
        CudaException.Check(CudaApi.cuModuleGetFunction(out var function, handle, entry.Name), $"Finding kernel '{entry.Name}' in '{variant}'");
        if (entry.SharedMemoryBytes > DefaultDynamicSharedMemoryLimit)
        {
            if (entry.SharedMemoryBytes > device.MaxSharedMemoryPerBlockOptin)
            {
                throw new NotSupportedException(string.Create(CultureInfo.InvariantCulture,
                    $"Kernel '{entry.Name}' of '{variant}' needs {entry.SharedMemoryBytes} bytes of dynamic shared memory per block; {device.Name} allows at most {device.MaxSharedMemoryPerBlockOptin}."));
            }
            CudaException.Check(CudaApi.cuFuncSetAttribute(function, CuFunctionAttribute.MaxDynamicSharedSizeBytes, entry.SharedMemoryBytes),
                string.Create(CultureInfo.InvariantCulture, $"Allowing kernel '{entry.Name}' of '{variant}' {entry.SharedMemoryBytes} bytes of dynamic shared memory"));
        }
        return new LoadedFunction(function, entry);
    }
}
