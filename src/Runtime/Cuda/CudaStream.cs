using KernelDsl.Launching;

namespace KernelDsl;

// SKELETON: the runtime helper replaces this file with the real implementation.
public sealed class CudaStream : IDisposable
{
    public bool IsDisposed { get; private set; }
    public void Launch(KernelModuleDefinition module, string entryPoint, Dim3 grid, KernelArguments arguments) => throw new NotImplementedException();
    public void Dispose() => IsDisposed = true;
}
