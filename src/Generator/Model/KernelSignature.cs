using System.Linq;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>What a launcher parameter is, for the checks and the marshalling derived from it.</summary>
public enum HostKind
{
    Stream,
    /// <summary>A <c>DeviceBuffer&lt;T&gt;</c>; <see cref="HostParameter.Optional"/> ones may be null.</summary>
    Buffer,
    /// <summary>An int, long or float passed by value.</summary>
    Scalar,
    /// <summary>A <c>ReadOnlySpan&lt;T&gt;</c> of host values the launcher checks and turns into device data itself.</summary>
    HostSpan,
}

/// <summary>One parameter of the generated <c>Launch</c>, in order.</summary>
/// <param name="Name">The C# name, also the key the generic <c>LaunchWith</c> reads it by.</param>
/// <param name="CSharpType">The C# type as generated code spells it (a buffer's is its element type).</param>
/// <param name="Role">What it is, for docs and messages ("Q [B][Hq][Sq][D] int8").</param>
public sealed record HostParameter(string Name, HostKind Kind, string CSharpType, bool Optional, string Role)
{
    /// <summary>The parameter's declared type: <c>DeviceBuffer&lt;T&gt;</c> (nullable when optional) or the scalar type.</summary>
    public string DeclaredType => Kind switch
    {
        HostKind.Stream => "global::KernelDsl.CudaStream",
        HostKind.Buffer => $"global::KernelDsl.DeviceBuffer<{CSharpType}>{(Optional ? "?" : "")}",
        HostKind.HostSpan => $"global::System.ReadOnlySpan<{CSharpType}>",
        _ => CSharpType,
    };
}

/// <summary>How a kernel parameter's value is made from the launcher's.</summary>
public enum Passing
{
    /// <summary>A buffer's device pointer (a null pointer for an optional buffer left out).</summary>
    Pointer,
    /// <summary>A scalar by value.</summary>
    Value,
    /// <summary>A TMA descriptor the launcher encodes from the buffer (<c>{name}Map</c>), by value as <c>__grid_constant__</c>.</summary>
    TensorMap,
    /// <summary>Always a null pointer: the kernel declares it, this variant has no use for it.</summary>
    NullPointer,
    /// <summary>A device address the launcher computes into a local (<see cref="KernelParameter.Host"/> names it): a buffer's, or pinned host memory's mapped for the device.</summary>
    Address,
}

/// <summary>One CUDA kernel parameter, in order, and the launcher parameter it comes from (none for <see cref="Passing.NullPointer"/>).</summary>
public sealed record KernelParameter(string CudaName, string CudaType, Passing Passing, string? Host);

/// <summary>
/// A kernel's interface, once: the launcher's parameters and the CUDA parameters made from them. The CUDA parameter
/// list, the C# <c>Launch</c> signature, its argument marshalling and the generic binding are all written from this value.
/// </summary>
public sealed record KernelSignature(EquatableArray<HostParameter> Host, EquatableArray<KernelParameter> Kernel)
{
    /// <summary>The CUDA parameter list, comma separated.</summary>
    public string CudaParameters => CudaParameterList(Kernel);

    /// <summary>Kernel parameters as a CUDA parameter list, comma separated (for kernels whose launcher is not one signature).</summary>
    public static string CudaParameterList(System.Collections.Generic.IEnumerable<KernelParameter> parameters) =>
        string.Join(", ", parameters.Select(CudaDeclaration));

    /// <summary>One CUDA parameter's declaration.</summary>
    public static string CudaDeclaration(KernelParameter p) => p.Passing == Passing.TensorMap
        ? $"const __grid_constant__ {p.CudaType} {p.CudaName}"
        : $"{p.CudaType} {p.CudaName}";

    /// <summary>The C# <c>Launch</c> parameter list.</summary>
    public string CSharpParameters => string.Join(", ", Host.Select(p => $"{p.DeclaredType} {p.Name}"));

    /// <summary>
    /// The same list with each optional buffer defaulting to null where every parameter after it is optional too (C# allows
    /// no other), so a counter added last leaves existing calls as they were.
    /// </summary>
    public string CSharpParametersWithDefaults =>
        string.Join(", ", Host.Select((p, i) => $"{p.DeclaredType} {p.Name}{(Host.Skip(i).All(q => q.Optional) ? " = null" : "")}"));

    public HostParameter HostOf(KernelParameter parameter) => Host.First(h => h.Name == parameter.Host);
}
