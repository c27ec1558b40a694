using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>The Int8Gemm family's rules: its can_implement, checked at build time.</summary>
public static class GemmValidator
{
    private static readonly Operand[] Operands = [Operand.A, Operand.B];

    public static ImmutableArray<Finding> Validate(GemmSpec spec) => Validate(spec, adviseAtoms: true);

    /// <param name="adviseAtoms">Whether a KDSL0501 names the atoms that would deliver the fragment, found by validating
    /// the declaration with each of them; off for those validations themselves.</param>
    private static ImmutableArray<Finding> Validate(GemmSpec spec, bool adviseAtoms)
    {
        var findings = new List<Finding>();
        CheckParameters(findings, spec);
        DeclarationRules.CheckOperands(findings, spec, Operands, Operands);
        DeclarationRules.CheckTargets(findings, spec);
        if (findings.Any(f => f.Rule.Severity == RuleSeverity.Error))
        {
            return findings.ToImmutableArray();
        }

        var plan = GemmPlan.Create(spec);
        CheckTiles(findings, plan);
        CheckAtoms(findings, plan);
        if (findings.Any(f => f.Rule.Severity == RuleSeverity.Error))
        {
            return findings.ToImmutableArray();
        }

        LayoutRules.Check(findings, spec, Operand.A, plan.ARows, plan.ARowBytes, plan.AProgram);
        LayoutRules.Check(findings, spec, Operand.B, plan.BRows, plan.BRowBytes, plan.BProgram);
        CheckLayoutElements(findings, plan);
        DeclarationRules.CheckSharedMemory(findings, spec, plan.SharedMemoryBytes,
            $"{Wording.Count(spec.Stages, "stage")} × ({plan.AStageBytes} bytes of A + {plan.BStageBytes} bytes of B)");
        if (findings.All(f => f.Rule.Severity != RuleSeverity.Error))
        {
            CheckComposition(findings, plan, adviseAtoms);
        }
        return findings.ToImmutableArray();
    }

    private static void CheckParameters(List<Finding> findings, GemmSpec spec)
    {
        void Bad(string name, int value, string rule) => findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, "Int8Gemm." + name, value, rule));

        if (!DeclarationRules.IsPowerOfTwo(spec.Warps) || spec.Warps > 16)
        {
            Bad(nameof(spec.Warps), spec.Warps, "use 1, 2, 4, 8 or 16 warps");
        }
        if (spec.WarpsM < 0 || (spec.WarpsM > 0 && (spec.Warps % spec.WarpsM != 0)))
        {
            Bad(nameof(spec.WarpsM), spec.WarpsM, $"it must divide Warps ({spec.Warps}), or be 0 to let the generator choose");
        }
        if (spec.Stages < 1 || spec.Stages > 8)
        {
            Bad(nameof(spec.Stages), spec.Stages, "use 1 to 8 pipeline stages");
        }
        foreach (var (name, value) in new[] { ("BlockM", spec.BlockM), ("BlockN", spec.BlockN), ("BlockK", spec.BlockK) })
        {
            if (value < 16 || value > 512)
            {
                Bad(name, value, "tile sides are 16 to 512 elements");
            }
        }
    }

    private static void CheckTiles(List<Finding> findings, GemmPlan plan)
    {
        var spec = plan.Spec;
        var mma = plan.Mma;
        void Tile(string message) => findings.Add(Finding.Of(Rules.TileNotDivisible, FindingTarget.Family, message));

        if (spec.BlockK % mma.K != 0)
        {
            Tile($"BlockK = {spec.BlockK} is not a multiple of the MMA's k ({mma.K}, {mma.Ptx})");
        }
        if (spec.BlockM % (plan.WarpsM * mma.M) != 0)
        {
            Tile($"BlockM = {spec.BlockM} does not split into {Wording.Count(plan.WarpsM, "warp")} × {mma.M} rows of {mma.Ptx}");
        }
        if (spec.BlockN % (plan.WarpsN * 16) != 0)
        {
            Tile($"BlockN = {spec.BlockN} does not split into {Wording.Count(plan.WarpsN, "warp")} × 16 columns (each B copy delivers two n8 MMA tiles)");
        }
        if (plan.WarpsM * plan.WarpsN != spec.Warps)
        {
            Tile($"no {plan.WarpsM}×{plan.WarpsN} warp grid gives {Wording.Count(spec.Warps, "warp")} for a {spec.BlockM}×{spec.BlockN} block");
        }
        var threads = plan.Threads;
        if (plan.AStageBytes / GemmPlan.ChunkBytes % threads != 0)
        {
            Tile($"the A stage ({plan.ARows}×{plan.ARowBytes} bytes = {plan.AStageBytes / 16} chunks of 16 bytes) does not split evenly over {threads} threads");
        }
        if (plan.BStageBytes / GemmPlan.ChunkBytes % threads != 0)
        {
            Tile($"the B stage ({plan.BRows}×{plan.BRowBytes} bytes = {plan.BStageBytes / 16} chunks of 16 bytes) does not split evenly over {threads} threads");
        }
    }

    private static void CheckAtoms(List<Finding> findings, GemmPlan plan)
    {
        var spec = plan.Spec;
        if (spec.Mma is null)
        {
            findings.Add(Finding.Of(Rules.MissingAtom, FindingTarget.Family, spec.Type.Name, "[MmaAtom]"));
        }
        else if (plan.Mma.AElement != Element.S8 || plan.Mma.BElement != Element.S8 || plan.Mma.IsWarpgroup)
        {
            findings.Add(Finding.Of(Rules.AtomNotForFamily, FindingTarget.Mma, spec.Mma, "Int8Gemm",
                plan.Mma.IsWarpgroup ? "it is a warp-group wgmma; this family issues mma.sync per warp" : "the family multiplies s8 × s8 operands"));
        }
        if (spec.PvMma is not null)
        {
            findings.Add(Finding.Of(Rules.AtomNotForFamily, FindingTarget.PvMma, spec.PvMma, "Int8Gemm", "a GEMM has one product: drop Product = MmaProduct.PV"));
        }
        foreach (var operand in Operands)
        {
            if (spec.CopyAtomOf(operand, CopyDirection.SharedToRegisters) is null)
            {
                findings.Add(Finding.Of(Rules.MissingAtom, FindingTarget.Family, spec.Type.Name, $"shared → register [CopyAtom] for operand {operand}"));
            }
        }
        for (var i = 0; i < spec.CopyAtoms.Count; i++)
        {
            var declared = spec.CopyAtoms[i];
            var atom = CopyAtom.Get(declared.Atom);
            var target = new FindingTarget(TargetKind.CopyAtom, i);
            if (atom.Direction == CopyDirection.RegistersToShared)
            {
                findings.Add(Finding.Of(Rules.AtomNotForFamily, target, declared.Atom, "Int8Gemm", "the GEMM writes no operand back to shared memory"));
            }
            else if (declared.Atom == CopyAtomKind.LdsmPretransposed && (declared.Operand != Operand.B || spec.Layout != GemmLayout.NN))
            {
                findings.Add(Finding.Of(Rules.AtomNotForFamily, target, declared.Atom, $"operand {declared.Operand} of a {spec.Layout} GEMM", "only an n-major (NN) B is transposed beforehand"));
            }
            else if (declared.Atom == CopyAtomKind.LdgSts16 && spec.Stages > 1)
            {
                findings.Add(Finding.Of(Rules.AtomNotForFamily, target, declared.Atom, $"{spec.Stages} stages", "plain loads block until the data arrives, so they cannot keep later stages in flight: use CpAsync16 or Stages = 1"));
            }
        }
    }

    private static void CheckLayoutElements(List<Finding> findings, GemmPlan plan)
    {
        var mma = plan.Mma;
        foreach (var (operand, element) in new[] { (Operand.A, mma.AElement), (Operand.B, mma.BElement) })
        {
            var index = LayoutRules.IndexOf(plan.Spec, operand);
            if (plan.Spec.SmemLayouts[index].Element != element)
            {
                findings.Add(Finding.Of(Rules.LayoutElement, new FindingTarget(TargetKind.SmemLayout, index), operand, plan.Spec.SmemLayouts[index].Element, mma.Ptx, element));
            }
        }
    }

    private static void CheckComposition(List<Finding> findings, GemmPlan plan, bool adviseAtoms)
    {
        var spec = plan.Spec;
        void Mismatch(Operand operand, string what, string why)
        {
            var advice = adviseAtoms ? DeclarationRules.Advice(DeclarationRules.AtomsThatDeliver(spec, operand, s => Validate((GemmSpec)s, adviseAtoms: false))) : "";
            var target = DeclarationRules.LoaderOf(spec, operand);
            findings.Add(Finding.Of(Rules.FragmentMismatch, target, spec.CopyAtoms[target.Index].Atom, what, plan.Mma.Ptx, advice, why));
        }

        if (plan.AProgram is null)
        {
            Mismatch(Operand.A, "A", "it cannot read an m × k tile");
            return;
        }
        var a = plan.ComposeA();
        if (!a.Succeeded)
        {
            Mismatch(Operand.A, "A", string.Join(" ", a.Errors));
            return;
        }
        var storage = plan.BStorage == OperandStorage.KN ? "stored k × n (NN)" : "stored n × k";
        if (plan.BProgram is null)
        {
            Mismatch(Operand.B, "B", $"it cannot read B {storage}");
            return;
        }
        var b = plan.ComposeB(a);
        if (!b.Succeeded)
        {
            Mismatch(Operand.B, $"B ({storage})", string.Join(" ", b.Errors));
        }
    }
}
