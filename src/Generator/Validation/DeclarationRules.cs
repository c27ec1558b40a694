using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>Rules every family shares: operands, duplicates, targets and what each atom needs of them.</summary>
public static class DeclarationRules
{
    public static void CheckOperands(List<Finding> findings, KernelSpec spec, Operand[] staged, Operand[] allowed)
    {
        var names = string.Join(", ", allowed);
        for (var i = 0; i < spec.SmemLayouts.Count; i++)
        {
            var operand = spec.SmemLayouts[i].Operand;
            var target = new FindingTarget(TargetKind.SmemLayout, i);
            if (!allowed.Contains(operand))
            {
                findings.Add(Finding.Of(Rules.UnknownOperand, target, spec.Family, operand, names));
            }
            else if (LayoutRules.IndexOf(spec, operand) != i)
            {
                findings.Add(Finding.Of(Rules.Duplicate, target, spec.Type.Name, "[SmemLayout]", operand));
            }
        }
        for (var i = 0; i < spec.CopyAtoms.Count; i++)
        {
            var atom = spec.CopyAtoms[i];
            var target = new FindingTarget(TargetKind.CopyAtom, i);
            if (!allowed.Contains(atom.Operand))
            {
                findings.Add(Finding.Of(Rules.UnknownOperand, target, spec.Family, atom.Operand, names));
                continue;
            }
            var direction = CopyAtom.Get(atom.Atom).Direction;
            for (var j = 0; j < i; j++)
            {
                if (spec.CopyAtoms[j].Operand == atom.Operand && CopyAtom.Get(spec.CopyAtoms[j].Atom).Direction == direction)
                {
                    findings.Add(Finding.Of(Rules.Duplicate, target, spec.Type.Name, $"a {Describe(direction)} copy atom", atom.Operand));
                    break;
                }
            }
        }
        foreach (var operand in staged)
        {
            if (LayoutRules.IndexOf(spec, operand) < 0)
            {
                findings.Add(Finding.Of(Rules.MissingLayout, FindingTarget.Family, spec.Type.Name, operand));
            }
        }
    }

    public static void CheckTargets(List<Finding> findings, KernelSpec spec)
    {
        if (spec.Targets.IsEmpty)
        {
            findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, $"{spec.Family}.Targets", "[]", "name at least one architecture"));
        }
        for (var i = 0; i < spec.CopyAtoms.Count; i++)
        {
            var atom = CopyAtom.Get(spec.CopyAtoms[i].Atom);
            CheckAtom(findings, spec, new FindingTarget(TargetKind.CopyAtom, i), atom.Kind.ToString(), atom.Instructions, atom.MinSm);
        }
        foreach (var (kind, target) in new[] { (spec.Mma, FindingTarget.Mma), (spec.PvMma, FindingTarget.PvMma) })
        {
            if (kind is { } mmaKind)
            {
                var mma = MmaAtom.Get(mmaKind);
                CheckAtom(findings, spec, target, mma.Kind.ToString(), mma.Ptx, mma.MinSm);
            }
        }
    }

    private static void CheckAtom(List<Finding> findings, KernelSpec spec, FindingTarget target, string name, string ptx, int minSm)
    {
        foreach (var sm in spec.Targets)
        {
            var lacks = minSm == (int)Sm.Sm90a ? sm != Sm.Sm90a : sm.Capability() < minSm;
            if (lacks)
            {
                var needs = minSm == (int)Sm.Sm90a ? "sm_90a (architecture-specific Hopper features)" : "sm_" + minSm;
                findings.Add(Finding.Of(Rules.AtomTargetMismatch, target, name, ptx, needs, spec.Type.Name, sm.ArchName()));
                return;
            }
        }
    }

    public static void CheckSharedMemory(List<Finding> findings, KernelSpec spec, int bytes, string breakdown)
    {
        foreach (var sm in spec.Targets.OrderBy(s => s.MaxSharedMemoryPerBlock()))
        {
            if (bytes > sm.MaxSharedMemoryPerBlock())
            {
                findings.Add(Finding.Of(Rules.SharedMemoryLimit, FindingTarget.Family, spec.Type.Name, bytes, breakdown, sm.ArchName(), sm.MaxSharedMemoryPerBlock()));
                return;
            }
        }
    }

    public static string Describe(CopyDirection direction) => direction switch
    {
        CopyDirection.GlobalToShared => "global → shared",
        CopyDirection.SharedToRegisters => "shared → register",
        _ => "register → shared",
    };

    public static bool IsPowerOfTwo(int value) => value > 0 && (value & (value - 1)) == 0;

    /// <summary>For families that stage nothing through declared layouts and issue no atoms: every such attribute is a finding.</summary>
    public static void CheckNothingStaged(List<Finding> findings, KernelSpec spec, string why)
    {
        for (var i = 0; i < spec.SmemLayouts.Count; i++)
        {
            findings.Add(Finding.Of(Rules.UnknownOperand, new FindingTarget(TargetKind.SmemLayout, i), spec.Family, spec.SmemLayouts[i].Operand,
                "none: it stages no operand through a declared shared-memory layout, so remove the [SmemLayout]"));
        }
        for (var i = 0; i < spec.CopyAtoms.Count; i++)
        {
            findings.Add(Finding.Of(Rules.AtomNotForFamily, new FindingTarget(TargetKind.CopyAtom, i), spec.CopyAtoms[i].Atom, spec.Family, why));
        }
        foreach (var (kind, target) in new[] { (spec.Mma, FindingTarget.Mma), (spec.PvMma, FindingTarget.PvMma) })
        {
            if (kind is { } mma)
            {
                findings.Add(Finding.Of(Rules.AtomNotForFamily, target, mma, spec.Family, why));
            }
        }
    }
}
