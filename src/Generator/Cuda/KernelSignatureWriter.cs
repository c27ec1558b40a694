using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>The kernel's name and parameter list, written from its <see cref="KernelSignature"/>: one parameter a line.</summary>
public static class KernelSignatureWriter
{
    public static void WriteDeclaration(CodeWriter w, string kernelName, KernelSignature signature)
    {
        w.Line($"{kernelName}(");
        var parameters = signature.CudaParameters.Split(new[] { ", " }, System.StringSplitOptions.None);
        for (var i = 0; i < parameters.Length; i++)
        {
            w.Line($"    {parameters[i]}{(i + 1 < parameters.Length ? "," : ")")}");
        }
    }
}
