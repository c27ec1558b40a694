using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>
/// The PagedDecode family's rules. Its atoms are fixed by the cache's layout (K pages k-major, V pages token-major, P in
/// the S accumulators' π order), so a declaration names none; the plan composes them at build time like any other.
/// </summary>
public static class PagedDecodeValidator
{
    public const int MaxWarps = 8;
    public const int MaxStages = 4;

    public static ImmutableArray<Finding> Validate(PagedDecodeSpec spec)
    {
        var findings = new List<Finding>();
        void Bad(string name, object value, string rule) =>
            findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, "PagedDecode." + name, value, rule));

        if (spec.Input is not (Element.F16 or Element.BF16))
        {
            Bad(nameof(spec.Input), spec.Input, "queries and output are f16 or bf16 (Element.F16 or Element.BF16)");
        }
        // Registers: a warp keeps O for 16 rows × D channels (D/2 floats a thread) and Q's fragments (D/8).
        if (spec.HeadDim is not (64 or 128))
        {
            Bad(nameof(spec.HeadDim), spec.HeadDim, "use 64 or 128: a warp holds O for all of its 16 rows' channels in registers");
        }
        if (spec.PageSize != 64)
        {
            Bad(nameof(spec.PageSize), spec.PageSize, "use 64, the cache's page: one K scale and one K mean per 64 keys, one step of the key loop");
        }
        // A step's S tiles come 16 keys a ldmatrix and its P·V takes 32 keys a k step; the page's statistics cover its steps.
        if (spec.PageSize == 64 && spec.StageKeys is not (64 or 32))
        {
            Bad(nameof(spec.StageKeys), spec.StageKeys, "use 64 (a page a step) or 32 (half a page): P·V takes 32 keys a k step and a step lies in one page");
        }
        if (!DeclarationRules.IsPowerOfTwo(spec.Warps) || spec.Warps > MaxWarps)
        {
            Bad(nameof(spec.Warps), spec.Warps, $"use a power of two from 1 to {MaxWarps}");
        }
        if (spec.Stages < 2 || spec.Stages > MaxStages)
        {
            Bad(nameof(spec.Stages), spec.Stages, $"use 2 to {MaxStages}: one step computed while the next ones load");
        }
        if (findings.Count == 0)
        {
            var bytes = new PagedDecodePlan(spec).SharedMemoryBytes;
            foreach (var sm in spec.Targets.OrderBy(s => s.MaxSharedMemoryPerBlock()))
            {
                var limit = sm.MaxSharedMemoryPerBlock();
                if (bytes > limit)
                {
                    var most = Enumerable.Range(2, spec.Stages - 1).LastOrDefault(s => new PagedDecodePlan(spec with { Stages = s }).SharedMemoryBytes <= limit);
                    // Half-page stages keep the warps and halve the codes a stage holds.
                    var halves = spec.StageKeys == spec.PageSize && new PagedDecodePlan(spec with { Stages = 2, StageKeys = spec.PageSize / 2 }).SharedMemoryBytes <= limit
                        ? $"use StageKeys = {spec.PageSize / 2} (half-page stages) or fewer Warps"
                        : "use fewer Warps";
                    findings.Add(Finding.Of(Rules.DecodeStagesTooLarge, FindingTarget.Family, spec.Type.Name, spec.Stages, spec.Warps, bytes, sm.ArchName(), limit,
                        most >= 2 ? $"use Stages ≤ {most} or fewer Warps" : $"{halves}: two stages of this many warps do not fit"));
                    break;
                }
            }
        }
        DeclarationRules.CheckNothingStaged(findings, spec, "the decode kernel's atoms follow from the cache's page layout (cp.async pages, ldmatrix K, ldmatrix.trans + prmt V, int8 mma.sync); remove the attribute");
        DeclarationRules.CheckTargets(findings, spec);
        return findings.ToImmutableArray();
    }
}
