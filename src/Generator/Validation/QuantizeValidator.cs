using System.Collections.Immutable;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>The Quantize family's rules.</summary>
public static class QuantizeValidator
{
    public static ImmutableArray<Finding> Validate(QuantizeSpec spec) => ImmutableArray<Finding>.Empty;
}
