using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Validation;

/// <summary>Which part of a declaration a finding is about, so the diagnostic points at that attribute.</summary>
public enum TargetKind { Type, Family, SmemLayout, CopyAtom, Mma }

/// <param name="Index">For <see cref="TargetKind.SmemLayout"/> and <see cref="TargetKind.CopyAtom"/>: which one, in declaration order.</param>
public readonly record struct FindingTarget(TargetKind Kind, int Index = 0)
{
    public static readonly FindingTarget Type = new(TargetKind.Type);
    public static readonly FindingTarget Family = new(TargetKind.Family);
    public static readonly FindingTarget Mma = new(TargetKind.Mma);
    public static readonly FindingTarget PvMma = new(TargetKind.Mma, 1);
}

/// <summary>A broken rule: pure data, turned into a Roslyn diagnostic at the generator's edge.</summary>
public sealed record Finding(Rule Rule, FindingTarget Target, EquatableArray<string> Arguments)
{
    public static Finding Of(Rule rule, FindingTarget target, params object[] arguments) =>
        new(rule, target, System.Linq.Enumerable.Select(arguments, a => System.Convert.ToString(a, System.Globalization.CultureInfo.InvariantCulture) ?? "").ToEquatableArray());

    public string Message => Rule.Format(Arguments);
}
