using System.Collections.Generic;
using System.Linq;

namespace KernelDsl.Generator.Model;

/// <summary>
/// What a kernel's modifiers add to its one signature, for every family that applies them (prefill attention, paged
/// decode): their runtime parameters as launcher and kernel parameters, and the extents their arrays must cover.
/// </summary>
public static class ModifierSignature
{
    /// <summary>
    /// The runtime parameters of the score modifier then the mask, each name once (a name both share is one argument, which
    /// must be positive if either method says so).
    /// </summary>
    public static IEnumerable<ModifierParameter> RuntimeParameters(ModifierSpec? score, ModifierSpec? mask) =>
        new[] { score, mask }.Where(m => m is not null)
            .SelectMany(m => m!.Parameters.Where(p => p.Role == ParameterRole.Runtime))
            .GroupBy(p => p.Name).Select(g => g.First() with { Positive = g.Any(p => p.Positive) });

    /// <summary>A runtime parameter as the launcher takes it (an int or float, or a device array of them) and as the kernel does.</summary>
    public static (HostParameter Host, KernelParameter Kernel) Parameter(ModifierParameter parameter)
    {
        var element = parameter.Type == ScalarType.Int ? "int" : "float";
        var cudaName = ModifierParameter.CudaName(parameter.Name);
        return parameter.IsArray
            ? (new HostParameter(parameter.Name, HostKind.Buffer, element, false, $"a read-only device array ({element}) the modifiers read"), new KernelParameter(cudaName, $"const {element}* __restrict__", Passing.Pointer, parameter.Name))
            : (new HostParameter(parameter.Name, HostKind.Scalar, element, false, $"a scalar ({element}) the modifiers read"), new KernelParameter(cudaName, element, Passing.Value, parameter.Name));
    }

    /// <summary>
    /// What a modifier array must cover, from the bodies: an array indexed by a bare b, h, q or k holds at least the extent
    /// <paramref name="extents"/> gives that index (a launcher's parameter or local, and what it counts), in a stable order.
    /// Other indexings are the caller's to keep in range.
    /// </summary>
    public static IEnumerable<(string Array, string Extent, string What, string Index)> ArrayExtents(ModifierSpec? score, ModifierSpec? mask,
        IReadOnlyDictionary<ParameterRole, (string Extent, string What)> extents)
    {
        var found = new SortedDictionary<string, (string, string, string, string)>(System.StringComparer.Ordinal);
        foreach (var modifier in new[] { score, mask }.Where(m => m is not null))
        {
            var roles = modifier!.Parameters.ToDictionary(p => p.Name, p => p.Role);
            foreach (var (array, index) in modifier.Nodes().OfType<IndexExpression>().Select(i => (i.Array, i.Index)))
            {
                if (index is ParameterExpression { Name: var name } && roles.TryGetValue(name, out var role) && extents.TryGetValue(role, out var extent))
                {
                    found[array + "|" + extent.Extent] = (array, extent.Extent, extent.What, name);
                }
            }
        }
        return found.Values;
    }
}
