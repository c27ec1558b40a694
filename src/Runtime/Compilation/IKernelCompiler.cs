namespace KernelDsl;

/// <summary>Compiles CUDA source to a cubin. <see cref="NvrtcCompiler"/> is the real one; tests inject fakes into <see cref="ModuleCache"/>.</summary>
public interface IKernelCompiler
{
    /// <summary>The compiler's version, folded into every cache key.</summary>
    NvrtcVersion Version { get; }

    /// <summary>Compiles <paramref name="request"/>; throws <see cref="NvrtcCompilationException"/> when the source is rejected.</summary>
    NvrtcResult Compile(NvrtcRequest request);
}
