using System.Collections.Generic;
using System.Collections.Immutable;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>
/// The KvStatistics family's rules. A block reads 8 channels (16 bytes) of K and of V per load and combines its threads'
/// partial sums in shared memory; it stages nothing through declared layouts and multiplies nothing.
/// </summary>
public static class KvStatisticsValidator
{
    public const int MaxSliceTokens = 65536;

    /// <param name="family">The declared family the findings name: KvStatistics, or KvSinglePass for the statistics it fuses.</param>
    public static ImmutableArray<Finding> Validate(KvStatisticsSpec spec, string family = "KvStatistics")
    {
        var findings = new List<Finding>();
        void Bad(string name, object value, string rule) =>
            findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, family + "." + name, value, rule));

        if (spec.Input is not (Element.F16 or Element.BF16))
        {
            Bad(nameof(spec.Input), spec.Input, "the statistics pass reads K and V as f16 or bf16 (Element.F16 or Element.BF16)");
        }
        // The attention head dims, as the quantize kernels: 8 channels per 16-byte load.
        if (!QuantizeValidator.HeadDims.Contains(spec.HeadDim))
        {
            Bad(nameof(spec.HeadDim), spec.HeadDim, "use 64, 96, 128 or 256 (the attention head dims)");
        }
        if (spec.SliceTokens < 16 || spec.SliceTokens > MaxSliceTokens || spec.SliceTokens % 16 != 0)
        {
            Bad(nameof(spec.SliceTokens), spec.SliceTokens, $"use a multiple of 16 from 16 to {MaxSliceTokens}");
        }
        if (spec.VOutput is not (Element.S8 or Element.E4M3))
        {
            Bad(nameof(spec.VOutput), spec.VOutput, "V's codes are int8 or e4m3 (Element.S8 or Element.E4M3)");
        }
        if (!DeclarationRules.IsPowerOfTwo(spec.Threads) || spec.Threads < QuantizeValidator.MinThreads || spec.Threads > QuantizeValidator.MaxThreads)
        {
            Bad(nameof(spec.Threads), spec.Threads, $"use a power of two from {QuantizeValidator.MinThreads} to {QuantizeValidator.MaxThreads} threads per block");
        }
        // Only for a valid head dim and thread count: the size divides by both.
        if (findings.Count == 0 && KvStatisticsPlan.SharedBytes(spec.HeadDim, spec.Threads) is var bytes && bytes > QuantizeValidator.MaxStaticSharedBytes)
        {
            var most = spec.Threads;
            while (most > QuantizeValidator.MinThreads && KvStatisticsPlan.SharedBytes(spec.HeadDim, most) > QuantizeValidator.MaxStaticSharedBytes)
            {
                most /= 2;
            }
            findings.Add(Finding.Of(Rules.KvStatisticsSharedMemory, FindingTarget.Family, spec.Type.Name, spec.Threads, bytes, spec.HeadDim,
                QuantizeValidator.MaxStaticSharedBytes, most));
        }
        DeclarationRules.CheckNothingStaged(findings, spec, "the statistics pass reads K and V with plain 16-byte loads and multiplies nothing; remove the attribute");
        DeclarationRules.CheckTargets(findings, spec);
        return findings.ToImmutableArray();
    }
}
