using System.Linq;
using KernelDsl.Generator.Diagnostics;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Validation;

namespace KernelDsl.Generator.Parsing;

/// <summary>What one attributed type yields: its spec (null if it could not be read) and its diagnostics.</summary>
public sealed record DeclarationResult(KernelSpec? Spec, EquatableArray<DiagnosticInfo> Diagnostics)
{
    /// <summary>Diagnostics that apply to this declaration but are reported with another (an attention family's first form reports its modifiers' errors).</summary>
    public EquatableArray<DiagnosticInfo> ReportedElsewhere { get; init; }

    public bool CanEmit => Spec is not null && FirstError is null;

    /// <summary>The first error, as "KDSL0301: message" (and how many more there are), or null when there is none.</summary>
    public string? FirstError
    {
        get
        {
            var errors = Diagnostics.Concat(ReportedElsewhere).Where(d => d.Rule.Severity == RuleSeverity.Error).ToList();
            return errors.Count == 0 ? null
                : $"{errors[0].Rule.Id}: {errors[0].Message}" + (errors.Count > 1 ? $" (and {Helpers.Wording.Count(errors.Count - 1, "more error")})" : "");
        }
    }
}
