using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>
/// The KvSinglePass family's rules: the statistics' and the codes' own (it fuses both, unchanged), then what holding a
/// slice in shared memory adds: whole K tiles and transposed-V pads a slice, head dims whose rows swizzle in groups of 8
/// chunks, and the slice within the shared memory a block may have on every target.
/// </summary>
public static class KvSinglePassValidator
{
    private const string Family = "KvSinglePass";

    public static ImmutableArray<Finding> Validate(KvSinglePassSpec spec)
    {
        var findings = new List<Finding>();
        void Bad(string name, object value, string rule) =>
            findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, Family + "." + name, value, rule));

        // The fused kernels' rules (their specs carry the targets, not the declaration's layouts or atoms).
        findings.AddRange(KvStatisticsValidator.Validate(spec.Statistics, Family));
        findings.AddRange(KvCodesValidator.Validate(spec.Codes, Family));
        if (spec.HeadDim is not (64 or 128 or 256))
        {
            Bad(nameof(spec.HeadDim), spec.HeadDim, $"use 64, 128 or 256: a token's chunks are swizzled in groups of {KvSinglePassPlan.Swizzle + 1} (64 channels) in shared memory");
        }
        // Only for valid tiles and pads (the rules divide by them), then only for a valid slice (the size multiplies it).
        if (findings.Count == 0 && spec.SliceTokens % spec.KScaleKeys != 0)
        {
            Bad(nameof(spec.SliceTokens), spec.SliceTokens, $"use a multiple of KScaleKeys ({spec.KScaleKeys}): a block writes whole K tiles");
        }
        if (findings.Count == 0 && spec.VTransposed && spec.SliceTokens % spec.TransposePad != 0)
        {
            Bad(nameof(spec.SliceTokens), spec.SliceTokens, $"use a multiple of TransposePad ({spec.TransposePad}): the last slice writes the transposed V's padding");
        }
        if (findings.Count == 0)
        {
            var plan = new KvSinglePassPlan(spec);
            DeclarationRules.CheckSharedMemory(findings, spec, plan.SliceBytes + plan.StaticSharedBytes,
                $"the slice's K and V, {plan.SliceBytes} bytes, and the block's arrays, {plan.StaticSharedBytes}; use fewer SliceTokens");
        }
        DeclarationRules.CheckNothingStaged(findings, spec, "the single pass copies K and V with cp.async and multiplies nothing; remove the attribute");
        DeclarationRules.CheckTargets(findings, spec);
        return findings.Distinct().ToImmutableArray();
    }
}
