using System.Collections.Generic;
using System.Collections.Immutable;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>
/// The KvCodes family's rules. A block holds its tile's K and V loads in registers until it has K's tile absmax, so the
/// tile is bounded by the registers a thread has; a transposed V also stages its codes in shared memory.
/// </summary>
public static class KvCodesValidator
{
    /// <summary>Most passes a thread holds (16 K and 16 V words per pass at most 4: 128 registers of loads).</summary>
    public const int MaxPasses = 4;

    /// <param name="family">The declared family the findings name: KvCodes, or KvSinglePass for the codes it fuses.</param>
    public static ImmutableArray<Finding> Validate(KvCodesSpec spec, string family = "KvCodes")
    {
        var findings = new List<Finding>();
        void Bad(string name, object value, string rule) =>
            findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, family + "." + name, value, rule));

        if (spec.Input is not (Element.F16 or Element.BF16))
        {
            Bad(nameof(spec.Input), spec.Input, "the codes pass reads K and V as f16 or bf16 (Element.F16 or Element.BF16)");
        }
        if (!QuantizeValidator.HeadDims.Contains(spec.HeadDim))
        {
            Bad(nameof(spec.HeadDim), spec.HeadDim, "use 64, 96, 128 or 256 (the attention head dims; 16 channels a thread)");
        }
        if (spec.KScaleKeys < 16 || spec.KScaleKeys > QuantizeValidator.MaxBlockRows || spec.KScaleKeys % 16 != 0)
        {
            Bad(nameof(spec.KScaleKeys), spec.KScaleKeys, $"use a multiple of 16 from 16 to {QuantizeValidator.MaxBlockRows} (attention tiles and π groups are 16 tokens)");
        }
        if (spec.VOutput is not (Element.S8 or Element.E4M3))
        {
            Bad(nameof(spec.VOutput), spec.VOutput, "V's codes are int8 or e4m3 (Element.S8 or Element.E4M3)");
        }
        if (spec.VTransposed && spec.KScaleKeys > 0 && (spec.TransposePad < spec.KScaleKeys || spec.TransposePad % spec.KScaleKeys != 0 || spec.TransposePad > QuantizeValidator.MaxTransposePad))
        {
            Bad(nameof(spec.TransposePad), spec.TransposePad, $"use a multiple of KScaleKeys ({spec.KScaleKeys}) up to {QuantizeValidator.MaxTransposePad}: each block writes whole tiles of the padded rows");
        }
        if (!DeclarationRules.IsPowerOfTwo(spec.Threads) || spec.Threads < QuantizeValidator.MinThreads || spec.Threads > QuantizeValidator.MaxThreads)
        {
            Bad(nameof(spec.Threads), spec.Threads, $"use a power of two from {QuantizeValidator.MinThreads} to {QuantizeValidator.MaxThreads} threads per block");
        }
        if (findings.Count == 0)
        {
            var plan = new KvCodesPlan(spec);
            if (plan.Passes > MaxPasses || plan.TransposedChunks > 2 * MaxPasses)
            {
                Bad(nameof(spec.KScaleKeys), spec.KScaleKeys,
                    $"each thread holds its share of the tile's loads in registers: use at most {MaxPasses * plan.RowsPerPass} tokens for HeadDim {spec.HeadDim} and {spec.Threads} threads");
            }
            else if (plan.SharedMemoryBytes > QuantizeValidator.MaxStaticSharedBytes)
            {
                Bad(nameof(spec.KScaleKeys), spec.KScaleKeys,
                    $"the transposed V's shared tile ({plan.SharedMemoryBytes} bytes with the scales) exceeds the {QuantizeValidator.MaxStaticSharedBytes} bytes a kernel declares statically");
            }
        }
        if (spec.VOutput == Element.E4M3)
        {
            DeclarationRules.CheckAtom(findings, spec, FindingTarget.Family, family + ".VOutput = E4M3", "cvt.rn.satfinite.e4m3x2.f32; on sm_89 PTX ISA 8.1, NVRTC 12.1", QuantizeSpec.E4m3MinSm);
        }
        DeclarationRules.CheckNothingStaged(findings, spec, "the codes pass reads and writes with plain 16-byte loads and stores and multiplies nothing; remove the attribute");
        DeclarationRules.CheckTargets(findings, spec);
        return findings.ToImmutableArray();
    }
}
