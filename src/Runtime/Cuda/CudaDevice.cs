using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using KernelDsl.Launching;
using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// One CUDA device through its primary context (the context the CUDA runtime and PyTorch share). Every call
/// makes that context current on the calling thread first, so a device may be used from any thread.
/// </summary>
public sealed unsafe class CudaDevice : IDisposable
{
    private readonly nint _context;
    private readonly Lazy<ModuleCache> _modules;
    private readonly LoadedModules _loaded;
    private int _disposed;

    private CudaDevice(int ordinal, int handle, nint context)
    {
        Ordinal = ordinal;
        Handle = handle;
        _context = context;
        Name = ReadName(handle);
        ComputeCapability = Attribute(CuDeviceAttribute.ComputeCapabilityMajor) * 10 + Attribute(CuDeviceAttribute.ComputeCapabilityMinor);
        SmCount = Attribute(CuDeviceAttribute.MultiprocessorCount);
        SharedMemoryPerBlock = Attribute(CuDeviceAttribute.MaxSharedMemoryPerBlock);
        MaxSharedMemoryPerBlockOptin = Attribute(CuDeviceAttribute.MaxSharedMemoryPerBlockOptin);
        L2CacheBytes = Attribute(CuDeviceAttribute.L2CacheSize);
        MaxPitchBytes = Attribute(CuDeviceAttribute.MaxPitch);
        CanMapHostMemory = Attribute(CuDeviceAttribute.CanMapHostMemory) != 0;
        DependentLaunches = DependentLaunchesOn(ComputeCapability, NativeLibrary.TryGetExport(NativeLibraries.CudaDriver.Handle, "cuLaunchKernelEx", out _));
        CudaException.Check(CudaApi.cuDeviceTotalMem_v2(out var total, handle), $"Reading the memory size of device {ordinal}");
        TotalMemoryBytes = (long)total;
        _modules = new Lazy<ModuleCache>(() => new ModuleCache(NvrtcCompiler.Load(), ModuleCache.DefaultDirectory()));
        _loaded = new LoadedModules(this);
    }

    /// <summary>The device's ordinal as the driver numbers devices.</summary>
    public int Ordinal { get; }

    /// <summary>The device's name, e.g. <c>NVIDIA H100 80GB HBM3</c>.</summary>
    public string Name { get; }

    /// <summary>Compute capability as major·10 + minor, e.g. 90 for Hopper.</summary>
    public int ComputeCapability { get; }

    /// <summary>The NVRTC architecture of this device, e.g. <c>sm_90</c>.</summary>
    public string ArchName => KernelTarget.ArchName(ComputeCapability);

    /// <summary>Number of streaming multiprocessors.</summary>
    public int SmCount { get; }

    /// <summary>Shared memory a block gets without opting in (48 KiB on current GPUs).</summary>
    public int SharedMemoryPerBlock { get; }

    /// <summary>The most shared memory a block may opt in to.</summary>
    public int MaxSharedMemoryPerBlockOptin { get; }

    /// <summary>L2 cache size in bytes.</summary>
    public int L2CacheBytes { get; }

    /// <summary>The largest pitch a 2D copy takes, in bytes (<c>CU_DEVICE_ATTRIBUTE_MAX_PITCH</c>, about 2 GiB).</summary>
    internal long MaxPitchBytes { get; }

    /// <summary>
    /// Whether kernels may read pinned host memory in place (<c>CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY</c>): true on
    /// every current GPU, false on some virtualized ones, where <see cref="CudaStream.TryMapForKernels"/> gives null.
    /// </summary>
    public bool CanMapHostMemory { get; }

    /// <summary>Whether <see cref="CudaStream.LaunchDependent"/> makes programmatic dependent launches here.</summary>
    internal bool DependentLaunches { get; }

    /// <summary>
    /// Programmatic dependent launches need sm_90 and a driver that exports <c>cuLaunchKernelEx</c>: asked of the library
    /// itself, since the binding would otherwise fail only at the first launch (EntryPointNotFoundException).
    /// </summary>
    internal static bool DependentLaunchesOn(int computeCapability, bool driverHasLaunchKernelEx) => computeCapability >= 90 && driverHasLaunchKernelEx;

    /// <summary>Total device memory in bytes.</summary>
    public long TotalMemoryBytes { get; }

    /// <summary>Device memory free right now, in bytes.</summary>
    public long FreeMemoryBytes => MemoryInfo().Free;

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The cubin cache this device compiles through (created, and NVRTC loaded, on first use).</summary>
    public ModuleCache Modules
    {
        get
        {
            ThrowIfDisposed();
            return _modules.Value;
        }
    }

    internal int Handle { get; }

    /// <summary>
    /// Opens device <paramref name="ordinal"/>, or says why it cannot: the reason's first line is one sentence a user can
    /// act on ("the NVIDIA driver (libcuda.so.1) is not installed", or the driver's error); the lines after it, the details
    /// (every library name tried).
    /// </summary>
    public static bool TryOpen(int ordinal, [NotNullWhen(true)] out CudaDevice? device, out string reason)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ordinal);
        try
        {
            device = Open(ordinal);
            reason = "";
            return true;
        }
        catch (DllNotFoundException e)
        {
            device = null;
            reason = $"the NVIDIA driver (libcuda.so.1) is not installed{Environment.NewLine}{e.Message}";
            return false;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or CudaException)
        {
            device = null;
            reason = e.Message;
            return false;
        }
    }

    /// <summary>Opens device <paramref name="ordinal"/>, retaining its primary context.</summary>
    /// <exception cref="DllNotFoundException">No CUDA driver library could be loaded; the message lists every name tried.</exception>
    /// <exception cref="CudaException">The driver failed, e.g. with <c>CUDA_ERROR_NO_DEVICE</c>.</exception>
    public static CudaDevice Open(int ordinal = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ordinal);
        var count = Count();
        if (ordinal >= count)
        {
            throw new CudaException(CuResult.InvalidDevice, $"Opening CUDA device {ordinal}", $"The driver sees {count} device(s).");
        }
        CudaException.Check(CudaApi.cuDeviceGet(out var handle, ordinal), $"Getting CUDA device {ordinal}");
        CudaException.Check(CudaApi.cuDevicePrimaryCtxRetain(out var context, handle), $"Retaining the primary context of device {ordinal}");
        try
        {
            CudaException.Check(CudaApi.cuCtxSetCurrent(context), $"Making the primary context of device {ordinal} current");
            return new CudaDevice(ordinal, handle, context);
        }
        catch
        {
            _ = CudaApi.cuDevicePrimaryCtxRelease_v2(handle);
            throw;
        }
    }

    /// <summary>How many CUDA devices the driver sees.</summary>
    /// <exception cref="DllNotFoundException">No CUDA driver library could be loaded; the message lists every name tried.</exception>
    /// <exception cref="CudaException">The driver failed to initialize.</exception>
    public static int Count()
    {
        CudaDriver.EnsureInitialized();
        CudaException.Check(CudaApi.cuDeviceGetCount(out var count), "Counting CUDA devices");
        return count;
    }

    /// <summary>Creates a stream on this device.</summary>
    public CudaStream CreateStream() => new(this);

    /// <summary>Allocates <paramref name="length"/> elements of device memory (contents undefined).</summary>
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged => new(this, length);

    /// <summary>Allocates a buffer the size of <paramref name="data"/> and copies it in.</summary>
    public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> data) where T : unmanaged
    {
        var buffer = Allocate<T>(data.Length);
        try
        {
            buffer.CopyFrom(data);
            return buffer;
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>Waits for all work on this device's primary context to finish; reports asynchronous kernel faults.</summary>
    public void Synchronize()
    {
        MakeCurrent();
        CudaException.Check(CudaApi.cuCtxSynchronize(), $"Synchronizing device {Ordinal} ({Name})");
    }

    /// <summary>Unloads this device's modules and releases its primary context. Buffers and streams must be disposed first.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _ = CudaApi.cuCtxSetCurrent(_context);
        _loaded.Dispose();
        _ = CudaApi.cuDevicePrimaryCtxRelease_v2(Handle);
    }

    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"CUDA device {Ordinal}: {Name} ({ArchName}, {SmCount} SMs)");

    /// <summary>Makes the primary context current on this thread; every native call site does this first.</summary>
    internal void MakeCurrent()
    {
        ThrowIfDisposed();
        CudaException.Check(CudaApi.cuCtxSetCurrent(_context), $"Making the primary context of device {Ordinal} current");
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    internal (long Free, long Total) MemoryInfo()
    {
        MakeCurrent();
        CudaException.Check(CudaApi.cuMemGetInfo_v2(out var free, out var total), $"Reading free memory of device {Ordinal}");
        return ((long)free, (long)total);
    }

    /// <summary>The loaded function for an entry point, compiling and loading its module on first use.</summary>
    internal LoadedFunction Function(KernelModuleDefinition module, string entryPoint) => _loaded.Function(module, entryPoint);

    /// <summary>
    /// How many blocks of <paramref name="entryPoint"/> one SM of this device holds at once, by the driver's occupancy
    /// calculator over the compiled kernel (its registers, its shared memory and its threads per block). Compiles and loads
    /// the module on first use; the answer is kept with the loaded function. Grids sized from this fill the machine the way it
    /// will really run, not as declared.
    /// </summary>
    /// <exception cref="ArgumentException">The module has no such entry point.</exception>
    public int ResidentBlocksPerSm(KernelModuleDefinition module, string entryPoint)
    {
        ArgumentNullException.ThrowIfNull(module);
        var function = Function(module, entryPoint);
        MakeCurrent();
        return function.ResidentBlocksPerSm(module.Name, Ordinal);
    }

    private int Attribute(CuDeviceAttribute attribute)
    {
        CudaException.Check(CudaApi.cuDeviceGetAttribute(out var value, attribute, Handle), $"Reading {attribute} of device {Ordinal}");
        return value;
    }

    private static string ReadName(int handle)
    {
        const int Capacity = 256;
        var name = stackalloc byte[Capacity];
        CudaException.Check(CudaApi.cuDeviceGetName(name, Capacity, handle), "Reading the device name");
        var text = new ReadOnlySpan<byte>(name, Capacity);
        var end = text.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? text : text[..end]);
    }
}
