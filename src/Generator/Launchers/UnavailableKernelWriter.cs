using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Parsing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace KernelDsl.Generator.Launchers;

/// <summary>A declaration the generator refused: its spec as read and its first error ("KDSL0301: …").</summary>
public sealed record UnavailableKernel(KernelSpec Spec, string Error);

/// <summary>
/// The members of a declaration with KDSL errors, so that its uses still bind and each mistake is one diagnostic, the
/// KDSL error at the declaration, instead of that plus a CS0117 at every use of Launch, Module or CudaSource.
/// They are the launcher writers' own output for the spec as declared (one source for every signature), with each
/// method and property body replaced by a throw that names the error, and CudaSource an #error line. The one change to
/// the spec: modifier parameters KDSL0650 refuses are renamed, so the stub itself always compiles.
/// Why a throwing body and not [Obsolete(..., error: true)]: an obsolete-as-error member adds a CS0619 at every use,
/// the same cascade in other words; a body adds nothing at compile time. It cannot run either, since the KDSL error
/// fails the build; only where that error's severity was lowered does it run, and then it says why it cannot.
/// </summary>
public static class UnavailableKernelWriter
{
    public static EquatableArray<GeneratedSource> Write(UnavailableKernel kernel)
    {
        var spec = kernel.Spec;
        var why = $"'{spec.Type.FullName}' has no kernel: its declaration has {kernel.Error}";
        string launcher;
        try
        {
            launcher = KernelGenerator.WriteLauncher(WithUsableParameterNames(spec));
        }
        catch (System.Exception e) when (e is not System.OperationCanceledException)
        {
            // A refused spec may hold values no writer is made for (a head dim under 8 divides by zero, say). Then it gets no
            // members and its uses report CS0117 as before: better than a generator that throws and so drops every file it
            // generates. The KDSL error, reported by its own step, still says what to fix.
            return EquatableArray<GeneratedSource>.Empty;
        }
        var hint = spec.Type.FullName + ".unavailable";
        return new[]
        {
            new GeneratedSource(hint + ".cu.g.cs", CudaSourceWriter.Write(spec, "#error " + why.Replace('\n', ' ') + "\n")),
            new GeneratedSource(hint + ".g.cs", Stub(launcher, why)),
        }.ToEquatableArray();
    }

    /// <summary>
    /// <paramref name="spec"/> with each modifier runtime parameter that KDSL0650 refuses renamed (a trailing '_' until the
    /// name is free), in the modifiers' signatures and bodies alike. The launcher writers append those parameters to
    /// parameters of their own, so as declared one named like a launcher parameter ('lse', 'seqQ', 'stream') made CS0100
    /// and a keyword ('base') a syntax error, beside the KDSL0650 that says to rename it. Position and type are kept, so
    /// positional calls still bind. The spec of a declaration without such a name is returned as it is.
    /// </summary>
    public static KernelSpec WithUsableParameterNames(KernelSpec spec)
    {
        var (score, mask) = spec switch
        {
            AttentionSpec attention => (attention.Score, attention.Mask),
            PagedDecodeSpec decode => (decode.Score, decode.Mask),
            _ => (null, null),
        };
        var modifiers = new[] { score, mask }.OfType<ModifierSpec>().ToList();
        if (modifiers.Count == 0)
        {
            return spec;
        }
        var taken = new HashSet<string>(DeclarationReader.LauncherNames(spec), System.StringComparer.Ordinal);
        var used = new HashSet<string>(taken.Concat(modifiers.SelectMany(m => m.Parameters.Select(p => p.Name).Concat(m.Locals.Select(l => l.Name)))), System.StringComparer.Ordinal);
        var renamed = new Dictionary<string, string>(System.StringComparer.Ordinal);
        foreach (var parameter in ModifierSignature.RuntimeParameters(score, mask).Where(p => taken.Contains(p.Name) || DeclarationReader.IsKeyword(p.Name)))
        {
            var name = parameter.Name + "_";
            while (!used.Add(name))
            {
                name += "_";
            }
            renamed[parameter.Name] = name;
        }
        if (renamed.Count == 0)
        {
            return spec;
        }
        string Name(string name) => renamed.TryGetValue(name, out var to) ? to : name;
        ModifierExpression Rename(ModifierExpression e) => e switch
        {
            ParameterExpression p => p with { Name = Name(p.Name) },
            IndexExpression i => i with { Array = Name(i.Array), Index = Rename(i.Index) },
            UnaryExpression u => u with { Operand = Rename(u.Operand) },
            BinaryExpression b => b with { Left = Rename(b.Left), Right = Rename(b.Right) },
            ConditionalExpression c => c with { Condition = Rename(c.Condition), WhenTrue = Rename(c.WhenTrue), WhenFalse = Rename(c.WhenFalse) },
            ConvertExpression c => c with { Operand = Rename(c.Operand) },
            CallExpression c => c with { Arguments = c.Arguments.Select(Rename).ToEquatableArray() },
            _ => e,
        };
        ModifierSpec? Apply(ModifierSpec? m) => m is null ? null : m with
        {
            Parameters = m.Parameters.Select(p => p.Role == ParameterRole.Runtime ? p with { Name = Name(p.Name) } : p).ToEquatableArray(),
            Locals = m.Locals.Select(l => l with { Value = Rename(l.Value) }).ToEquatableArray(),
            Result = Rename(m.Result),
        };
        return spec switch
        {
            AttentionSpec attention => attention with { Score = Apply(score), Mask = Apply(mask) },
            PagedDecodeSpec decode => decode with { Score = Apply(score), Mask = Apply(mask) },
            _ => spec,
        };
    }

    /// <summary>The launcher's text with every body a throw of <paramref name="why"/> and a note saying so under the header.</summary>
    public static string Stub(string launcher, string why)
    {
        var root = CSharpSyntaxTree.ParseText(launcher).GetRoot();
        var stubbed = new Rewriter(why).Visit(root).ToFullString();
        // Under the header comment lines, which stay first (tools look there for <auto-generated/>).
        var body = stubbed.IndexOf("\n#", System.StringComparison.Ordinal) + 1;
        return stubbed.Substring(0, body)
            + "// The declaration has KDSL errors: these members keep its uses compiling, so each mistake is reported once, and throw if run.\n"
            + stubbed.Substring(body);
    }

    private sealed class Rewriter(string why) : CSharpSyntaxRewriter
    {
        private ArrowExpressionClauseSyntax Throw() => SyntaxFactory.ArrowExpressionClause(
            SyntaxFactory.Token(SyntaxFactory.TriviaList(SyntaxFactory.Space), SyntaxKind.EqualsGreaterThanToken, SyntaxFactory.TriviaList(SyntaxFactory.Space)),
            SyntaxFactory.ParseExpression($"throw new global::System.InvalidOperationException({SymbolDisplay.FormatLiteral(why, quote: true)})"));

        private static SyntaxToken Semicolon(SyntaxNode replaced) =>
            SyntaxFactory.Token(SyntaxFactory.TriviaList(), SyntaxKind.SemicolonToken, replaced.GetLastToken().TrailingTrivia);

        public override SyntaxNode? VisitMethodDeclaration(MethodDeclarationSyntax node) => node
            .WithParameterList(node.ParameterList.WithTrailingTrivia())
            .WithBody(null)
            .WithExpressionBody(Throw())
            .WithSemicolonToken(Semicolon(node));

        public override SyntaxNode? VisitPropertyDeclaration(PropertyDeclarationSyntax node) => node
            .WithIdentifier(node.Identifier.WithTrailingTrivia())
            .WithAccessorList(null)
            .WithInitializer(null)
            .WithExpressionBody(Throw())
            .WithSemicolonToken(Semicolon(node));
    }
}
