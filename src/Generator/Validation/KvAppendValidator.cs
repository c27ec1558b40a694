using System.Collections.Generic;
using System.Collections.Immutable;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>
/// The KvCacheAppend family's rules. A block requantizes one page of one head from its 16-bit originals held in shared
/// memory, reading and writing 8 channels (16 bytes) at a time; it stages nothing through declared layouts.
/// </summary>
public static class KvAppendValidator
{
    public const int MaxPageSize = 1024;

    public static ImmutableArray<Finding> Validate(KvAppendSpec spec)
    {
        var findings = new List<Finding>();
        void Bad(string name, object value, string rule) =>
            findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, "KvCacheAppend." + name, value, rule));

        if (spec.Input is not (Element.F16 or Element.BF16))
        {
            Bad(nameof(spec.Input), spec.Input, "the cache takes new tokens as f16 or bf16 (Element.F16 or Element.BF16)");
        }
        // The attention head dims, as the quantize kernels: 16-byte int8 rows and 8 channels per 16-byte load.
        if (!QuantizeValidator.HeadDims.Contains(spec.HeadDim))
        {
            Bad(nameof(spec.HeadDim), spec.HeadDim, "use 64, 96, 128 or 256 (the attention head dims)");
        }
        if (spec.PageSize < 16 || spec.PageSize > MaxPageSize || spec.PageSize % 16 != 0)
        {
            Bad(nameof(spec.PageSize), spec.PageSize, $"use a multiple of 16 from 16 to {MaxPageSize}: the attention kernels read keys in tiles of 16");
        }
        if (!DeclarationRules.IsPowerOfTwo(spec.Threads) || spec.Threads < 32 || spec.Threads > 1024)
        {
            Bad(nameof(spec.Threads), spec.Threads, "use a power of two from 32 to 1024 (whole warps: the page's absmax is a warp reduction)");
        }
        var bytes = KvAppendPlan.SharedBytes(spec.HeadDim, spec.PageSize, spec.Threads);
        if (findings.Count == 0 && bytes > QuantizeValidator.MaxStaticSharedBytes)
        {
            var most = (QuantizeValidator.MaxStaticSharedBytes - KvAppendPlan.SharedBytes(spec.HeadDim, 0, spec.Threads)) / (2 * spec.HeadDim) / 16 * 16;
            findings.Add(Finding.Of(Rules.KvPageTooLarge, FindingTarget.Family, spec.Type.Name, spec.PageSize, spec.HeadDim, bytes, QuantizeValidator.MaxStaticSharedBytes, most));
        }
        DeclarationRules.CheckNothingStaged(findings, spec, "the append kernel moves pages with plain 16-byte loads and stores and multiplies nothing; remove the attribute");
        DeclarationRules.CheckTargets(findings, spec);
        return findings.ToImmutableArray();
    }
}
