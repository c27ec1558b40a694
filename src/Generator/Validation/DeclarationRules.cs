using System;
using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
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

    /// <summary>KDSL0401 for the first target below <paramref name="minSm"/> that an instruction (an atom's, or a family's own) needs.</summary>
    public static void CheckAtom(List<Finding> findings, KernelSpec spec, FindingTarget target, string name, string ptx, int minSm)
    {
        foreach (var sm in spec.Targets)
        {
            if (sm.Lacks(minSm))
            {
                findings.Add(Finding.Of(Rules.AtomTargetMismatch, target, name, ptx, SmFacts.Needs(minSm), spec.Type.Name, sm.ArchName()));
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

    /// <summary>The finding target of the atom that loads <paramref name="operand"/> from shared memory into registers (the family when none is declared).</summary>
    public static FindingTarget LoaderOf(KernelSpec spec, Operand operand)
    {
        for (var i = 0; i < spec.CopyAtoms.Count; i++)
        {
            if (spec.CopyAtoms[i].Operand == operand && CopyAtom.Get(spec.CopyAtoms[i].Atom).Direction == CopyDirection.SharedToRegisters)
            {
                return new FindingTarget(TargetKind.CopyAtom, i);
            }
        }
        return FindingTarget.Family;
    }

    /// <summary>
    /// The shared → register atoms of the catalog that deliver <paramref name="operand"/>'s fragment where the declared one
    /// does not: each is put in the declaration's place and the declaration validated again by <paramref name="validate"/>
    /// (the family's own rules, the same fragment simulation included), so a suggestion is one that builds. A candidate
    /// counts when nothing is wrong but other operands' fragments, which a fix of this one cannot be blamed for.
    /// </summary>
    public static IReadOnlyList<CopyAtomKind> AtomsThatDeliver(KernelSpec spec, Operand operand, Func<KernelSpec, IEnumerable<Finding>> validate)
    {
        var loader = LoaderOf(spec, operand);
        if (loader.Kind != TargetKind.CopyAtom)
        {
            return [];
        }
        var declared = spec.CopyAtoms[loader.Index];
        return CopyAtom.All
            .Where(atom => atom.Direction == CopyDirection.SharedToRegisters && atom.Kind != declared.Atom)
            .Where(atom =>
            {
                var candidate = spec with { CopyAtoms = spec.CopyAtoms.Select((a, i) => i == loader.Index ? a with { Atom = atom.Kind } : a).ToEquatableArray() };
                return validate(candidate).All(f => f.Rule.Severity != RuleSeverity.Error || (f.Rule == Rules.FragmentMismatch && f.Target != loader));
            })
            .Select(atom => atom.Kind)
            .ToList();
    }

    /// <summary>KDSL0501's advice: the atoms <see cref="AtomsThatDeliver"/> found, as the user would write them.</summary>
    public static string Advice(IReadOnlyList<CopyAtomKind> atoms)
    {
        if (atoms.Count == 0)
        {
            return "no copy atom of the catalog delivers it for this operand's layout and MMA";
        }
        var names = atoms.Select(kind => "CopyAtoms." + kind + (CopyAtom.Get(kind).Prerequisite is { } needs ? $" (with {needs})" : "")).ToList();
        var list = names.Count == 1 ? names[0] : string.Join(", ", names.Take(names.Count - 1)) + " or " + names[names.Count - 1];
        return $"use {list}, which {(names.Count == 1 ? "does" : "do")}";
    }

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
