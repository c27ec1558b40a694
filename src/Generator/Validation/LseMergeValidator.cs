using System.Collections.Generic;
using System.Collections.Immutable;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>The LseMerge family's rules.</summary>
public static class LseMergeValidator
{
    public static ImmutableArray<Finding> Validate(LseMergeSpec spec)
    {
        var findings = new List<Finding>();
        if (spec.HeadDim < 8 || spec.HeadDim > 512 || spec.HeadDim % 8 != 0)
        {
            findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, "LseMerge.HeadDim", spec.HeadDim, "use a multiple of 8 from 8 to 512: each lane moves 8 channels (16 bytes) at a time"));
        }
        if (!DeclarationRules.IsPowerOfTwo(spec.Threads) || spec.Threads < 32 || spec.Threads > 1024)
        {
            findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, "LseMerge.Threads", spec.Threads, "use a power of two from 32 to 1024 (whole warps)"));
        }
        DeclarationRules.CheckNothingStaged(findings, spec, "the merge reads and writes rows with plain loads and multiplies nothing; remove the attribute");
        DeclarationRules.CheckTargets(findings, spec);
        return findings.ToImmutableArray();
    }
}
