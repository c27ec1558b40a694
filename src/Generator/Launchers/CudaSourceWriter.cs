using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>
/// The <c>{Type}.cu.g.cs</c> file: the CUDA module as a raw string constant, so the generated file reads like
/// the .cu itself (EmitCompilerGeneratedFiles puts it under obj/), and code can print or hash it.
/// </summary>
public static class CudaSourceWriter
{
    public static string Write(KernelSpec spec, string cuda) => CSharpFile.Write(spec.Type, w =>
    {
        w.Line($"/// <summary>The generated CUDA C++ module: self-contained, compiled by NVRTC for the GPU at hand.</summary>");
        CSharpFile.WriteRawString(w, "public const string CudaSource", cuda);
    });
}
