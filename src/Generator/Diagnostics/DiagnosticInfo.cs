using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Validation;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace KernelDsl.Generator.Diagnostics;

/// <summary>A location as values, so diagnostics can sit in cached pipeline outputs without holding a syntax tree.</summary>
public sealed record LocationInfo(string FilePath, TextSpan Span, LinePositionSpan Lines)
{
    public Location ToLocation() => Location.Create(FilePath, Span, Lines);

    public static LocationInfo? From(SyntaxNode? node)
    {
        if (node is null)
        {
            return null;
        }
        return From(node.GetLocation());
    }

    public static LocationInfo? From(Location location) =>
        location.SourceTree is null ? null : new LocationInfo(location.SourceTree.FilePath, location.SourceSpan, location.GetLineSpan().Span);
}

/// <summary>A diagnostic as values: rule, where, message arguments.</summary>
public sealed record DiagnosticInfo(Rule Rule, LocationInfo? Location, EquatableArray<string> Arguments)
{
    private static readonly Dictionary<string, DiagnosticDescriptor> Descriptors = Rules.All.ToDictionary(r => r.Id, Describe);

    /// <summary>The message as the diagnostic shows it.</summary>
    public string Message => Rule.Format(Arguments);

    public Diagnostic ToDiagnostic() =>
        Diagnostic.Create(Descriptors[Rule.Id], Location?.ToLocation(), Arguments.Cast<object>().ToArray());

    public static DiagnosticDescriptor Describe(Rule rule) => new(
        rule.Id, rule.Title, rule.Message, "KernelDsl",
        rule.Severity == RuleSeverity.Error ? DiagnosticSeverity.Error : DiagnosticSeverity.Warning,
        isEnabledByDefault: true);
}
