using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>
/// The sections every generated <c>Launch</c> writes from its <see cref="KernelSignature"/>, written once: the parameter
/// docs, the checks that the stream and buffers are live, the kernel arguments in the kernel's order, and the checks of
/// a strided [B][H][S][D] tensor read 16 bytes at a time. A family's launcher writer adds only what is its own.
/// </summary>
public static class LauncherSections
{
    private const string Guard = ModuleWriter.Launching + ".LaunchGuard";

    /// <summary>One <c>&lt;param&gt;</c> line per launcher parameter, from its role.</summary>
    public static void WriteParameterDocs(CodeWriter w, IEnumerable<HostParameter> parameters)
    {
        foreach (var parameter in parameters)
        {
            w.Line($"/// <param name=\"{parameter.Name}\">{parameter.Role}.</param>");
        }
    }

    /// <summary>Each [Positive] runtime scalar of the modifiers is positive (and finite, a float).</summary>
    public static void WriteModifierArgumentChecks(CodeWriter w, IEnumerable<ModifierParameter> runtime)
    {
        foreach (var parameter in runtime.Where(p => p.Positive && !p.IsArray))
        {
            w.Line($"{Guard}.Positive({parameter.Name}, nameof({parameter.Name}));");
        }
    }

    /// <summary>The stream and every buffer is there and not disposed; an optional buffer only when given.</summary>
    public static void WriteReferenceChecks(CodeWriter w, KernelSignature signature)
    {
        foreach (var parameter in signature.Host)
        {
            if (parameter.Kind == HostKind.Stream)
            {
                w.Line($"{Guard}.Stream({parameter.Name}, nameof({parameter.Name}));");
            }
            else if (parameter.Kind == HostKind.Buffer)
            {
                w.Line($"{(parameter.Optional ? $"if ({parameter.Name} is not null) " : "")}{Guard}.Buffer({parameter.Name}, nameof({parameter.Name}));");
            }
        }
    }

    /// <summary>
    /// <c>var {local} = new KernelArguments();</c> and one line per kernel parameter in the kernel's order: a launcher
    /// parameter or local by its host expression, an optional buffer left out as a null pointer, a TMA descriptor the
    /// launcher encoded (<c>{name}Map</c>), or the null pointer of a parameter the variant does not use.
    /// </summary>
    public static void WriteArguments(CodeWriter w, KernelSignature signature, string local = "arguments") =>
        WriteArguments(w, signature.Kernel, host => signature.Host.Any(h => h.Name == host && h.Optional), local);

    /// <summary>
    /// <see cref="WriteArguments(CodeWriter, KernelSignature, string)"/> for kernel parameters whose launcher parameters
    /// are not one signature (a module of several kernels launched from one method): <paramref name="optional"/> says
    /// which launcher parameters may be null.
    /// </summary>
    public static void WriteArguments(CodeWriter w, IEnumerable<KernelParameter> parameters, System.Func<string?, bool> optional, string local)
    {
        w.Line($"var {local} = new {ModuleWriter.Launching}.KernelArguments();");
        foreach (var parameter in parameters)
        {
            var isOptional = optional(parameter.Host);
            w.Line(parameter.Passing switch
            {
                Passing.NullPointer => $"{local}.AddNullPointer();  // {parameter.CudaName}: unused by this variant",
                Passing.TensorMap => $"{local}.AddValue({parameter.Host}Map);",
                Passing.Address => $"{local}.AddValue({parameter.Host});",
                Passing.Pointer when isOptional => $"if ({parameter.Host} is null) {local}.AddNullPointer(); else {local}.Add({parameter.Host});",
                _ => $"{local}.Add({parameter.Host});",
            });
        }
    }

    /// <summary><see cref="WriteArguments(CodeWriter, KernelSignature, string)"/>, then the launch of <paramref name="kernel"/> (a module constant) on <paramref name="grid"/> (Dim3.Of's arguments).</summary>
    /// <param name="dependent">Launch as a programmatic dependent of the kernel queued before it (the kernel waits for it: griddepcontrol.wait).</param>
    public static void WriteLaunch(CodeWriter w, KernelSignature signature, string kernel, string grid, string local = "arguments", bool dependent = false) =>
        WriteLaunch(w, signature.Kernel, host => signature.Host.Any(h => h.Name == host && h.Optional), kernel, grid, local, dependent);

    /// <summary>The same for kernel parameters whose launcher parameters are not one signature (<see cref="WriteArguments(CodeWriter, IEnumerable{KernelParameter}, System.Func{string?, bool}, string)"/>).</summary>
    public static void WriteLaunch(CodeWriter w, IEnumerable<KernelParameter> parameters, System.Func<string?, bool> optional, string kernel, string grid,
        string local, bool dependent = false)
    {
        WriteArguments(w, parameters, optional, local);
        w.Line($"stream.{(dependent ? "LaunchDependent" : "Launch")}(Module, {kernel}, {ModuleWriter.Launching}.Dim3.Of({grid}), {local});");
    }

    /// <summary>
    /// A [batch, heads, tokens, HeadDim] tensor at element strides {strideStem}B/H/S (by default {tensor}StrideB/H/S) whose
    /// threads read 8 channels as one 16-byte load: each stride covers a row and is a multiple of 8, the base is 16-byte
    /// aligned, and the buffer holds the last element. <paramref name="condition"/> prefixes every check (an optional
    /// tensor's <c>if (v is not null) </c>).
    /// </summary>
    public static void WriteStridedTensorChecks(CodeWriter w, string tensor, string condition = "", string? strideStem = null)
    {
        var strides = new[] { "B", "H", "S" }.Select(s => (strideStem ?? tensor + "Stride") + s).ToArray();
        foreach (var stride in strides)
        {
            w.Line($"{condition}{Guard}.AtLeast({stride}, HeadDim, nameof({stride}), \"HeadDim: a token's channels are contiguous and rows must not overlap\");");
            w.Line($"{condition}{Guard}.MultipleOf({stride}, 8, nameof({stride}), \"each thread reads 8 channels as one 16-byte load\");");
        }
        w.Line($"{condition}{Guard}.Aligned({tensor}, 16, nameof({tensor}));");
        var shape = $"$\"{tensor} [{{batch}}, {{heads}}, {{tokens}}, {{HeadDim}}] at strides ({{{strides[0]}}}, {{{strides[1]}}}, {{{strides[2]}}})\"";
        w.Line($"{condition}{Guard}.Holds({tensor}, (batch - 1) * {strides[0]} + (heads - 1) * {strides[1]} + (tokens - 1) * {strides[2]} + HeadDim, nameof({tensor}), {shape});");
    }
}
