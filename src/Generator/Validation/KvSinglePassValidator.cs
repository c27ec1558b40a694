using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>
/// The KvSinglePass family's rules: the statistics' and the codes' own (it fuses both, unchanged), then the head dims and
/// threads its register budget was fitted at.
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
        // Its register budget (two blocks an SM) and loads in flight were fitted at these alone (NVRTC 11.8, no spills).
        if (findings.Count == 0 && spec.HeadDim is not (64 or 128))
        {
            Bad(nameof(spec.HeadDim), spec.HeadDim, "use 64 or 128: the single pass's registers are fitted and measured there only (docs/PERF_NOTES.md §15)");
        }
        if (findings.Count == 0 && spec.Threads != 256)
        {
            Bad(nameof(spec.Threads), spec.Threads, "use 256: the single pass's registers are fitted and measured at two blocks of 256 threads an SM");
        }
        DeclarationRules.CheckNothingStaged(findings, spec, "the single pass reads K and V with plain 16-byte loads and multiplies nothing; remove the attribute");
        DeclarationRules.CheckTargets(findings, spec);
        // One finding per parameter: both fused families check the head dim, input and threads in their own words.
        return findings.GroupBy(f => (f.Rule, f.Arguments.Count > 0 ? f.Arguments[0] : "")).Select(g => g.First()).ToImmutableArray();
    }
}
