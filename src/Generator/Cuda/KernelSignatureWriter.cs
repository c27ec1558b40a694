using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>The kernel's name and parameter list, written from its <see cref="KernelSignature"/>: one parameter a line.</summary>
public static class KernelSignatureWriter
{
    public static void WriteDeclaration(CodeWriter w, string kernelName, KernelSignature signature)
    {
        w.Line($"{kernelName}(");
        for (var i = 0; i < signature.Kernel.Count; i++)
        {
            w.Line($"    {KernelSignature.CudaDeclaration(signature.Kernel[i])}{(i + 1 < signature.Kernel.Count ? "," : ")")}");
        }
    }
}
