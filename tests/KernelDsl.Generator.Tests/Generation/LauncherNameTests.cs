using GeneratorTests.Infrastructure;
using KernelDsl.Generator;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Parsing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace GeneratorTests.Generation;

/// <summary>
/// KDSL0650 refuses a modifier parameter that would clash with a name the generated launcher declares. Its list of those
/// names is kept by hand beside the writers, so this holds it to what they write: every member, parameter and local of
/// every library attention and decode launcher (plain, wgmma, persistent, with each library modifier) is on it.
/// </summary>
public class LauncherNameTests
{
    private static readonly string[] Declarations = ["src/Attention/FlashAttention", "src/Attention/KvCache"];

    [Fact]
    public void Every_name_a_launcher_declares_is_one_a_modifier_parameter_may_not_take()
    {
        var root = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."));
        var sources = Declarations.SelectMany(d => Directory.EnumerateFiles(Path.Combine(root, d), "*.cs"))
            .Select(File.ReadAllText).Where(t => t.Contains("[FlashAttentionForward", StringComparison.Ordinal) || t.Contains("[PagedDecode", StringComparison.Ordinal)).ToArray();
        var run = GeneratorHarness.RunGenerator(sources);
        var specs = run.Result.Results.Single().TrackedSteps[TrackingNames.ValidSpecs].SelectMany(s => s.Outputs).Select(o => o.Value)
            .OfType<KernelSpec>().Where(s => s is AttentionSpec or PagedDecodeSpec).ToList();
        Assert.Contains(specs, s => s is PagedDecodeSpec { Score: not null });
        Assert.Contains(specs, s => s is AttentionSpec { Persistent: true, Mask: not null });
        var missing = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var spec in specs)
        {
            var launcher = CSharpSyntaxTree.ParseText(run.Source(spec.Type.FullName + ".g.cs"), cancellationToken: TestContext.Current.CancellationToken).GetRoot(TestContext.Current.CancellationToken);
            var (score, mask) = spec switch
            {
                AttentionSpec a => (a.Score, a.Mask),
                PagedDecodeSpec d => (d.Score, d.Mask),
                _ => (null, null),
            };
            var user = new[] { score, mask }.OfType<ModifierSpec>().SelectMany(m => m.Parameters).Select(p => p.Name).ToHashSet();
            var reserved = DeclarationReader.LauncherNames(spec).ToHashSet();
            foreach (var name in DeclaredNames(launcher).Where(n => !user.Contains(n) && !reserved.Contains(n)))
            {
                missing.Add($"{name} ({spec.Type.Name})");
            }
        }
        Assert.True(missing.Count == 0, "declared by a launcher but not refused as a modifier parameter name: " + string.Join(", ", missing));
    }

    /// <summary>
    /// The identifiers a modifier parameter shares a scope with: the launcher's members, and the parameters and locals
    /// (lambdas' included) of the methods whose parameters the modifiers' join: Launch, LaunchWith and With.
    /// </summary>
    private static IEnumerable<string> DeclaredNames(SyntaxNode root)
    {
        var kernel = root.DescendantNodes().OfType<ClassDeclarationSyntax>().Last();
        foreach (var member in kernel.Members)
        {
            switch (member)
            {
                case MethodDeclarationSyntax m:
                    yield return m.Identifier.Text;
                    if (m.Identifier.Text is "Launch" or "LaunchWith" or "With")
                    {
                        foreach (var name in Locals(m))
                        {
                            yield return name;
                        }
                    }
                    break;
                case PropertyDeclarationSyntax p: yield return p.Identifier.Text; break;
                case FieldDeclarationSyntax f:
                    foreach (var v in f.Declaration.Variables)
                    {
                        yield return v.Identifier.Text;
                    }
                    break;
            }
        }
    }

    private static IEnumerable<string> Locals(SyntaxNode method) => method.DescendantNodes().Select(node => node switch
    {
        VariableDeclaratorSyntax v => v.Identifier.Text,
        ParameterSyntax p => p.Identifier.Text,
        ForEachStatementSyntax f => f.Identifier.Text,
        SingleVariableDesignationSyntax d => d.Identifier.Text,
        _ => null,
    }).OfType<string>();
}
