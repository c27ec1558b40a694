using System.Linq;
using KernelDsl.Generator.Diagnostics;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Validation;

namespace KernelDsl.Generator.Parsing;

/// <summary>What one attributed type yields: its spec (null if it could not be read) and its diagnostics.</summary>
public sealed record DeclarationResult(KernelSpec? Spec, EquatableArray<DiagnosticInfo> Diagnostics)
{
    public bool CanEmit => Spec is not null && Diagnostics.All(d => d.Rule.Severity != RuleSeverity.Error);
}
