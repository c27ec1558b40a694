using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>
/// The KvSinglePass family's rules: the statistics' and the codes' own (it fuses both, unchanged), and both roles' shared
/// arrays within what one kernel declares statically.
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
        // Both roles' arrays are one kernel's static shared memory.
        if (findings.Count == 0 && new KvSinglePassPlan(spec).StaticSharedBytes is var bytes && bytes > QuantizeValidator.MaxStaticSharedBytes)
        {
            Bad(nameof(spec.Threads), spec.Threads,
                $"the statistics' lane sums and the codes' arrays take {bytes} bytes of static shared memory, over {QuantizeValidator.MaxStaticSharedBytes}: use fewer threads");
        }
        DeclarationRules.CheckNothingStaged(findings, spec, "the single pass copies K and V with cp.async and multiplies nothing; remove the attribute");
        DeclarationRules.CheckTargets(findings, spec);
        // One finding per parameter: both fused families check the head dim, input and threads in their own words.
        return findings.GroupBy(f => (f.Rule, f.Arguments.Count > 0 ? f.Arguments[0] : "")).Select(g => g.First()).ToImmutableArray();
    }
}
