using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using KernelDsl.Generator.Diagnostics;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Validation;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace KernelDsl.Generator.Parsing;

/// <summary>
/// Reads [ScoreModifier] and [MaskModifier] methods into <see cref="ModifierSpec"/>s. The body is read from its
/// IOperation tree rather than its syntax, because the operations carry C#'s implicit conversions and folded constants;
/// every construct outside the translatable subset is reported at its own syntax with its own KDSL06xx rule.
/// </summary>
public static class ModifierReader
{
    public const string ScoreModifierAttribute = "KernelDsl.ScoreModifierAttribute";
    public const string MaskModifierAttribute = "KernelDsl.MaskModifierAttribute";
    public const string NondecreasingAttribute = "KernelDsl.NondecreasingAttribute";
    public const string PositiveAttribute = "KernelDsl.PositiveAttribute";

    /// <summary>
    /// Finds the [ScoreModifier] and [MaskModifier] methods declared in kernelType itself or any of its containing
    /// types (innermost first; the innermost type that declares one of a kind wins), translates each, and adds a
    /// DiagnosticInfo for every problem to <paramref name="diagnostics"/>. Returns null for a kind that is absent or has errors.
    /// </summary>
    public static (ModifierSpec? Score, ModifierSpec? Mask) Read(INamedTypeSymbol kernelType, Compilation compilation,
        List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
    {
        return (Find(ModifierKind.Score), Find(ModifierKind.Mask));

        ModifierSpec? Find(ModifierKind kind)
        {
            if (Methods(kernelType, kind, cancellationToken) is not { } found)
            {
                return null;
            }
            var (type, methods) = found;
            foreach (var extra in methods.Skip(1))
            {
                Report(diagnostics, Rules.DuplicateModifier, LocationInfo.From(extra.Locations[0]), type.Name, ShortName(kind), methods[0].Name, extra.Name);
            }
            var spec = Translate(methods[0], kind, compilation, diagnostics, cancellationToken);
            // With two candidates neither is the modifier: the user has to say which.
            return methods.Count == 1 ? spec : null;
        }
    }

    /// <summary>
    /// The modifiers of <paramref name="kernelType"/> by their signatures alone, each with a placeholder literal for a
    /// body (null for a kind that is absent, declared twice, or whose signature is itself wrong). A declaration whose
    /// modifier body cannot be translated still gets placeholder members (UnavailableKernelWriter) with the modifier's
    /// runtime parameters, so calls that pass them bind and the body's error stays the one diagnostic.
    /// </summary>
    public static (ModifierSpec? Score, ModifierSpec? Mask) Signatures(INamedTypeSymbol kernelType, Compilation compilation, CancellationToken cancellationToken)
    {
        return (Find(ModifierKind.Score), Find(ModifierKind.Mask));

        ModifierSpec? Find(ModifierKind kind)
        {
            if (Methods(kernelType, kind, cancellationToken) is not ({ } _, [var single]))
            {
                return null;
            }
            var (method, syntax) = SourceOf(single, compilation, cancellationToken);
            var problems = new List<DiagnosticInfo>();
            var parameters = syntax is null ? null : ReadSignature(method, kind, syntax, problems);
            return parameters is null || problems.Count > 0 ? null : Spec(kind, method, parameters, [],
                kind == ModifierKind.Score ? new LiteralExpression(ScalarType.Float, "0.0f") : new LiteralExpression(ScalarType.Bool, "false"));
        }
    }

    /// <summary>The types whose modifiers <paramref name="kernelType"/> applies: for each kind, the innermost type around it that declares one.</summary>
    public static IEnumerable<INamedTypeSymbol> Hosts(INamedTypeSymbol kernelType, CancellationToken cancellationToken) =>
        new[] { ModifierKind.Score, ModifierKind.Mask }.Select(kind => Methods(kernelType, kind, cancellationToken)?.Type).OfType<INamedTypeSymbol>();

    /// <summary>The [ScoreModifier] or [MaskModifier] methods of the innermost type, from kernelType outwards, that declares any.</summary>
    private static (INamedTypeSymbol Type, List<IMethodSymbol> Methods)? Methods(INamedTypeSymbol kernelType, ModifierKind kind, CancellationToken cancellationToken)
    {
        for (var type = kernelType; type is not null; type = type.ContainingType)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var methods = type.GetMembers().OfType<IMethodSymbol>()
                .Where(m => m.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == AttributeName(kind)))
                .ToList();
            if (methods.Count > 0)
            {
                return (type, methods);
            }
        }
        return null;
    }

    /// <summary>Translates one method (used by Read and by tests).</summary>
    public static ModifierSpec? Translate(IMethodSymbol method, ModifierKind kind, Compilation compilation,
        List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
    {
        (method, var syntax) = SourceOf(method, compilation, cancellationToken);
        if (syntax is null)
        {
            Report(diagnostics, Rules.ModifierNotInSource, LocationInfo.From(method.Locations[0]), ShortName(kind), method.Name);
            return null;
        }
        var model = compilation.GetSemanticModel(syntax.SyntaxTree);
        // Code the compiler rejects is the compiler's to report; its operations would only be guesses.
        if (model.GetDiagnostics(syntax.Span, cancellationToken).Any(d => d.Severity == DiagnosticSeverity.Error))
        {
            return null;
        }

        var errors = diagnostics.Count;
        var parameters = ReadSignature(method, kind, syntax, diagnostics);
        // The body is read only under a valid signature, so its parameter references are known to be translatable.
        if (diagnostics.Count > errors)
        {
            return null;
        }
        var body = new BodyTranslator(model, parameters, diagnostics, cancellationToken);
        var result = body.Translate((MethodDeclarationSyntax)syntax);
        if (diagnostics.Count > errors || result is null)
        {
            return null;
        }
        return Spec(kind, method, parameters, body.Locals, result);
    }

    /// <summary>The method part that has the body (a partial method's implementation) and its syntax in this compilation, if any.</summary>
    private static (IMethodSymbol Method, SyntaxNode? Syntax) SourceOf(IMethodSymbol method, Compilation compilation, CancellationToken cancellationToken)
    {
        method = method.PartialImplementationPart ?? method;
        return (method, method.DeclaringSyntaxReferences
            .Select(r => r.GetSyntax(cancellationToken))
            .FirstOrDefault(s => compilation.ContainsSyntaxTree(s.SyntaxTree)));
    }

    private static ModifierSpec Spec(ModifierKind kind, IMethodSymbol method, IEnumerable<ModifierParameter> parameters, IEnumerable<ModifierLocal> locals,
        ModifierExpression result) => new()
    {
        Kind = kind,
        MethodName = method.Name,
        DeclaringType = method.ContainingType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat),
        Parameters = parameters.ToEquatableArray(),
        Locals = locals.ToEquatableArray(),
        Result = result,
    };

    private static string AttributeName(ModifierKind kind) => kind == ModifierKind.Score ? ScoreModifierAttribute : MaskModifierAttribute;

    private static string ShortName(ModifierKind kind) => kind == ModifierKind.Score ? "ScoreModifier" : "MaskModifier";

    private static void Report(List<DiagnosticInfo> diagnostics, Rule rule, LocationInfo? location, params string[] arguments) =>
        diagnostics.Add(new DiagnosticInfo(rule, location, arguments.ToEquatableArray()));

    /// <summary>The subset's value types; null for any other type.</summary>
    private static ScalarType? Scalar(ITypeSymbol? type) => type?.SpecialType switch
    {
        SpecialType.System_Boolean => ScalarType.Bool,
        SpecialType.System_Int32 => ScalarType.Int,
        SpecialType.System_Single => ScalarType.Float,
        SpecialType.System_Double => ScalarType.Double,
        _ => null,
    };

    private static string Keyword(ScalarType type) => type.ToString().ToLowerInvariant();

    /// <summary>The leading parameters' types and roles by position; their names are the user's.</summary>
    private static Leading[] LeadingParameters(ModifierKind kind) => kind == ModifierKind.Score ? [Score, .. Indices] : Indices;

    private sealed record Leading(ScalarType Type, ParameterRole Role, string Declaration, string Meaning);

    private static readonly Leading Score = new(ScalarType.Float, ParameterRole.Score, "float score", "the score, a float");

    private static readonly Leading[] Indices =
    [
        new(ScalarType.Int, ParameterRole.Batch, "int b", "the batch index, an int"),
        new(ScalarType.Int, ParameterRole.Head, "int h", "the head index, an int"),
        new(ScalarType.Int, ParameterRole.Query, "int q", "the query index, an int"),
        new(ScalarType.Int, ParameterRole.Key, "int k", "the key index, an int"),
    ];

    /// <summary>Checks the method's shape, reporting each problem at the method, its return type or the parameter.</summary>
    private static List<ModifierParameter> ReadSignature(IMethodSymbol method, ModifierKind kind, SyntaxNode syntax, List<DiagnosticInfo> diagnostics)
    {
        var parameters = new List<ModifierParameter>();
        var name = LocationInfo.From(method.Locations[0]);
        void Fail(LocationInfo? location, string why) => Report(diagnostics, Rules.ModifierSignature, location, ShortName(kind), method.Name, why);

        if (method.MethodKind != MethodKind.Ordinary || syntax is not MethodDeclarationSyntax declaration)
        {
            Fail(name, $"is a {method.MethodKind} method: a modifier is an ordinary static method");
            return parameters;
        }
        if (!method.IsStatic)
        {
            Fail(name, "is not static: it becomes a CUDA device function, which has no instance; declare it 'static'");
        }
        if (method.IsGenericMethod)
        {
            Fail(name, "is generic: CUDA needs one concrete signature; remove the type parameters");
        }
        if (declaration.Body is null && declaration.ExpressionBody is null)
        {
            Fail(name, "has no body to translate to CUDA");
        }
        var returns = kind == ModifierKind.Score ? ScalarType.Float : ScalarType.Bool;
        if (method.RefKind != RefKind.None || Scalar(method.ReturnType) != returns)
        {
            var meaning = kind == ModifierKind.Score ? "the new score" : "true where query q may see key k";
            Fail(LocationInfo.From(declaration.ReturnType), $"returns '{declaration.ReturnType}', but a {Noun(kind)} returns {Keyword(returns)}: {meaning}");
        }

        var leading = LeadingParameters(kind);
        if (method.Parameters.Length < leading.Length)
        {
            var expected = string.Join(", ", leading.Select(l => l.Declaration));
            Fail(LocationInfo.From(declaration.ParameterList), $"has {Wording.Count(method.Parameters.Length, "parameter")}, but a {Noun(kind)} starts with ({expected})");
            return parameters;
        }
        for (var i = 0; i < method.Parameters.Length; i++)
        {
            var parameter = method.Parameters[i];
            var at = LocationInfo.From(declaration.ParameterList.Parameters[i]);
            var passing = parameter switch
            {
                { RefKind: not RefKind.None } => $"passes '{parameter.Name}' by reference: modifier parameters are values; remove '{declaration.ParameterList.Parameters[i].Modifiers}'",
                { IsParams: true } => $"declares '{parameter.Name}' 'params': the launcher passes each runtime argument by name; declare a plain array",
                { IsThis: true } => "is an extension method: remove 'this'",
                { HasExplicitDefaultValue: true } => $"gives '{parameter.Name}' a default value: the generated launcher takes every runtime argument; remove the default",
                _ => null,
            };
            if (passing is not null)
            {
                Fail(at, passing);
                continue;
            }
            var nondecreasing = parameter.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == NondecreasingAttribute);
            // [Nondecreasing] is a promise about an array's elements: on anything else it would promise nothing.
            void NotAnArray(string what) => Report(diagnostics, Rules.ModifierNondecreasing,
                LocationInfo.From(nondecreasing!.ApplicationSyntaxReference?.GetSyntax()) ?? at, parameter.Name, method.Name, what);
            var positive = parameter.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == PositiveAttribute);
            // [Positive] is a rule on a value the caller passes: an index or a score is the kernel's own, an array has many.
            void NotAScalar(string what) => Report(diagnostics, Rules.ModifierPositive,
                LocationInfo.From(positive!.ApplicationSyntaxReference?.GetSyntax()) ?? at, parameter.Name, method.Name, what);
            if (i < leading.Length)
            {
                if (Scalar(parameter.Type) != leading[i].Type)
                {
                    Fail(at, $"declares parameter {i + 1} as '{parameter.Type.ToDisplayString()} {parameter.Name}', but a {Noun(kind)}'s parameter {i + 1} is {leading[i].Meaning}");
                    continue;
                }
                if (nondecreasing is not null)
                {
                    NotAnArray(leading[i].Meaning);
                    continue;
                }
                if (positive is not null)
                {
                    NotAScalar(leading[i].Meaning);
                    continue;
                }
                parameters.Add(new ModifierParameter(parameter.Name, leading[i].Type, false, leading[i].Role));
                continue;
            }
            if (RuntimeType(parameter.Type) is not { } runtime)
            {
                Fail(at, $"declares runtime parameter '{parameter.Name}' as '{parameter.Type.ToDisplayString()}': runtime parameters are int, float, ReadOnlySpan<int>, ReadOnlySpan<float>, int[] or float[]");
                continue;
            }
            if (nondecreasing is not null && !runtime.IsArray)
            {
                NotAnArray($"a scalar {Keyword(runtime.Type)}");
                continue;
            }
            if (positive is not null && runtime.IsArray)
            {
                NotAScalar($"an array of {Keyword(runtime.Type)}");
                continue;
            }
            parameters.Add(new ModifierParameter(parameter.Name, runtime.Type, runtime.IsArray, ParameterRole.Runtime, nondecreasing is not null, positive is not null));
        }
        return parameters;
    }

    private static string Noun(ModifierKind kind) => kind == ModifierKind.Score ? "score modifier" : "mask modifier";

    /// <summary>int and float scalars, and read-only int and float arrays (a span, or an array the kernel only reads).</summary>
    private static (ScalarType Type, bool IsArray)? RuntimeType(ITypeSymbol type)
    {
        var element = type switch
        {
            IArrayTypeSymbol { Rank: 1 } array => array.ElementType,
            INamedTypeSymbol { Name: "ReadOnlySpan", TypeArguments.Length: 1 } span when span.ContainingNamespace.ToDisplayString() == "System" => span.TypeArguments[0],
            _ => null,
        };
        var scalar = Scalar(element ?? type);
        return scalar is ScalarType.Int or ScalarType.Float ? (scalar.Value, element is not null) : null;
    }

    /// <summary>A constant as CUDA spells the same value; negative numbers parenthesized so they sit anywhere in an expression.</summary>
    private static string Spell(object value) => value switch
    {
        bool b => b ? "true" : "false",
        // -2147483648 is unary minus on 2147483648, which CUDA reads as a long long.
        int i when i == int.MinValue => "(-2147483647 - 1)",
        int i => Signed(i.ToString(CultureInfo.InvariantCulture)),
        float f when float.IsNaN(f) => "__int_as_float(0x7fffffff)",
        float f when float.IsPositiveInfinity(f) => "__int_as_float(0x7f800000)",
        float f when float.IsNegativeInfinity(f) => "__int_as_float(0xff800000)",
        float f => Signed(Floating(f.ToString("R", CultureInfo.InvariantCulture)) + "f"),
        double d when double.IsNaN(d) => "__longlong_as_double(0x7fffffffffffffffLL)",
        double d when double.IsPositiveInfinity(d) => "__longlong_as_double(0x7ff0000000000000LL)",
        double d when double.IsNegativeInfinity(d) => "__longlong_as_double(0xfff0000000000000ULL)",
        double d => Signed(Floating(d.ToString("R", CultureInfo.InvariantCulture))),
        _ => throw new ArgumentException($"not a scalar constant: {value}", nameof(value)),
    };

    /// <summary>"2" → "2.0" and "1E-05" → "1e-05", so the text stays a floating literal in CUDA.</summary>
    private static string Floating(string roundTrip)
    {
        var text = roundTrip.Replace('E', 'e');
        return text.IndexOf('.') >= 0 || text.IndexOf('e') >= 0 ? text : text + ".0";
    }

    private static string Signed(string text) => text.StartsWith("-", StringComparison.Ordinal) ? "(" + text + ")" : text;

    /// <summary>Syntax for a message: one line, and short.</summary>
    private static string Quote(SyntaxNode node)
    {
        var text = string.Join(" ", node.ToString().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return text.Length <= 60 ? text : text.Substring(0, 57) + "...";
    }

    /// <summary>Walks one body's statements and expressions; every refusal reports and yields null.</summary>
    private sealed class BodyTranslator(SemanticModel model, List<ModifierParameter> parameters, List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
    {
        private static readonly string MathFunctions = string.Join(", ", Enum.GetNames(typeof(MathFunction)));

        /// <summary>Each declared local; null for one whose initializer was refused, so its uses report nothing more.</summary>
        private readonly Dictionary<ILocalSymbol, ModifierLocal?> _declared = new(SymbolEqualityComparer.Default);

        public List<ModifierLocal> Locals { get; } = [];

        /// <summary>Local declarations, then one return; yields the returned expression.</summary>
        public ModifierExpression? Translate(MethodDeclarationSyntax syntax)
        {
            var body = (IMethodBodyOperation)model.GetOperation(syntax, cancellationToken)!;
            var statements = (body.BlockBody ?? body.ExpressionBody)!.Operations;
            ModifierExpression? result = null;
            for (var i = 0; i < statements.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                switch (statements[i])
                {
                    case IVariableDeclarationGroupOperation group:
                        Declare(group);
                        break;
                    case IReturnOperation { ReturnedValue: { } value } when i == statements.Length - 1:
                        result = Expression(value);
                        break;
                    case IEmptyOperation:
                        break;
                    case var statement:
                        RefuseStatement(statement);
                        break;
                }
            }
            return result;
        }

        private void Declare(IVariableDeclarationGroupOperation group)
        {
            var declarators = group.Declarations.SelectMany(d => d.Declarators).ToList();
            // A refused declaration's locals are still known, so their uses report nothing more.
            foreach (var declared in declarators)
            {
                _declared[declared.Symbol] = null;
            }
            if (declarators.Count != 1)
            {
                Refuse(Rules.ModifierStatement, group.Syntax, "declaring several locals in one statement", "declare one local per statement");
                return;
            }
            var local = declarators[0].Symbol;
            if (local.IsConst)
            {
                // Every use of a const local folds to a literal.
                return;
            }
            if (local.IsRef)
            {
                Refuse(Rules.ModifierStatement, group.Syntax, $"the ref local '{local.Name}'", "locals hold values");
                return;
            }
            if (declarators[0].GetVariableInitializer() is not { } initializer)
            {
                Refuse(Rules.ModifierStatement, group.Syntax, $"the local '{local.Name}' without a value", "locals are assigned once, where they are declared");
                return;
            }
            // The initializer's value includes the conversion to the local's type, so its type is the local's.
            if (Expression(initializer.Value) is { } value)
            {
                var translated = new ModifierLocal(local.Name, value.Type, value);
                _declared[local] = translated;
                Locals.Add(translated);
            }
        }

        private void RefuseStatement(IOperation statement)
        {
            if (statement is ILoopOperation)
            {
                var keyword = statement.Syntax switch
                {
                    ForEachStatementSyntax each => each.ForEachKeyword.Text,
                    ForEachVariableStatementSyntax each => each.ForEachKeyword.Text,
                    _ => statement.Syntax.GetFirstToken().Text,
                };
                Refuse(Rules.ModifierLoop, statement.Syntax, keyword);
                return;
            }
            var inner = statement is IExpressionStatementOperation expression ? expression.Operation : statement;
            var (what, why) = inner switch
            {
                IConditionalOperation => ("'if'", "use the conditional operator: return condition ? a : b;"),
                ISwitchOperation => ("'switch'", "use the conditional operator: return condition ? a : b;"),
                IReturnOperation => ("a 'return' before the last statement", "return once, at the end, and choose the value with the conditional operator"),
                IBlockOperation => ("a nested block", "declare the locals at the top level of the body"),
                ILocalFunctionOperation => ("a local function", "inline it: the body must be translatable to CUDA"),
                _ => Describe(inner) ?? ($"'{statement.Syntax.GetFirstToken().Text}'", "declare locals with values and end with 'return'"),
            };
            Refuse(Rules.ModifierStatement, statement.Syntax, what, why);
        }

        /// <summary>What mutates or throws, as a statement or inside an expression.</summary>
        private static (string What, string Why)? Describe(IOperation operation) => operation switch
        {
            IAssignmentOperation or IIncrementOrDecrementOperation => ("assignment", "locals are never reassigned; declare a new local for each value"),
            ITryOperation or IThrowOperation => ($"'{operation.Syntax.GetFirstToken().Text}'", "nothing can throw or catch inside the attention kernel; clamp or mask the value instead"),
            _ => null,
        };

        private ModifierExpression? Expression(IOperation operation)
        {
            var syntax = operation.Syntax;
            if (operation.ConstantValue.HasValue)
            {
                return Scalar(operation.Type) is { } type && operation.ConstantValue.Value is { } value
                    ? new LiteralExpression(type, Spell(value))
                    : Refuse(Rules.ModifierType, syntax, Quote(syntax), "has", operation.Type?.ToDisplayString() ?? "null");
            }
            // stackalloc has no operation interface of its own.
            if (syntax is StackAllocArrayCreationExpressionSyntax or ImplicitStackAllocArrayCreationExpressionSyntax)
            {
                return Refuse(Rules.ModifierAllocation, syntax, Quote(syntax));
            }
            switch (operation)
            {
                case IInvocationOperation invocation:
                    return Call(invocation);
                case IObjectCreationOperation or IArrayCreationOperation or ICollectionExpressionOperation or IAnonymousObjectCreationOperation
                    or ITypeParameterObjectCreationOperation or IDynamicObjectCreationOperation or IInterpolatedStringOperation or IWithOperation:
                    return Refuse(Rules.ModifierAllocation, syntax, Quote(syntax));
                case IFieldReferenceOperation field:
                    // A const field folded above; any other field is state the kernel cannot see.
                    return Refuse(Rules.ModifierExternalState, syntax, Quote(syntax), $"it reads the field '{field.Field.Name}'");
                case IPropertyReferenceOperation property:
                    return Property(property);
                case IArrayElementReferenceOperation element when element.Indices.Length == 1:
                    return Index(element, element.ArrayReference, element.Indices[0]);
                case IInstanceReferenceOperation:
                    return Refuse(Rules.ModifierExternalState, syntax, Quote(syntax), "it refers to an instance");
                case IAnonymousFunctionOperation or IDelegateCreationOperation or IMethodReferenceOperation:
                    return Refuse(Rules.ModifierExternalState, syntax, Quote(syntax), "a lambda or method reference makes a delegate, which captures state and calls code outside the body");
                case IParameterReferenceOperation reference:
                    return Parameter(reference);
                case ILocalReferenceOperation reference:
                    return _declared.TryGetValue(reference.Local, out var local)
                        ? local is null ? null : new LocalExpression(local.Type, local.Name)
                        : Refuse(Rules.ModifierExpression, syntax, Quote(syntax), "only locals declared at the top of the body can be read");
                case IUnaryOperation unary:
                    return Unary(unary);
                case IBinaryOperation binary:
                    return Binary(binary);
                case IConditionalOperation { WhenFalse: { } whenFalse } conditional:
                {
                    // Every operand is read, so each refusal in them is reported in one build, not one a build.
                    var (condition, whenTrue, otherwise) = (Expression(conditional.Condition), Expression(conditional.WhenTrue), Expression(whenFalse));
                    return condition is not null && whenTrue is not null && otherwise is not null
                        ? Typed(conditional, type => new ConditionalExpression(type, condition, whenTrue, otherwise))
                        : null;
                }
                case IConversionOperation conversion:
                    return Conversion(conversion);
            }
            if (Describe(operation) is var (what, why))
            {
                return Refuse(Rules.ModifierStatement, syntax, what, why);
            }
            var advice = operation switch
            {
                IIsPatternOperation or IIsTypeOperation => "use comparison and logical operators",
                ISwitchExpressionOperation or ICoalesceOperation or IConditionalAccessOperation => "use the conditional operator",
                _ => "the body may use arithmetic, comparison and logical operators, the conditional operator, locals, constants, MathF/Math functions and array parameters read by index",
            };
            return Refuse(Rules.ModifierExpression, syntax, Quote(syntax), advice);
        }

        private ModifierExpression? Call(IInvocationOperation invocation)
        {
            var target = invocation.TargetMethod;
            var name = target.ContainingType is { } type && target.MethodKind != MethodKind.LocalFunction ? $"{type.Name}.{target.Name}" : target.Name;
            var isMath = target.IsStatic && target.ContainingType?.ToDisplayString() is "System.Math" or "System.MathF";
            if (!isMath)
            {
                return Refuse(Rules.ModifierCall, invocation.Syntax, name,
                    $"calls to other methods are not supported: the body must be translatable to CUDA; inline it, or call one of the Math and MathF functions a modifier can call: {MathFunctions}");
            }
            if (!Enum.TryParse<MathFunction>(target.Name, out var function))
            {
                return Refuse(Rules.ModifierCall, invocation.Syntax, name, $"it has no CUDA counterpart here; the Math and MathF functions a modifier can call are {MathFunctions}");
            }
            // Log(a, newBase) and Round(x, digits or mode) have no one-call CUDA form.
            if (function is MathFunction.Log or MathFunction.Round && target.Parameters.Length != 1)
            {
                return Refuse(Rules.ModifierCall, invocation.Syntax, name, $"only the one-argument {target.Name} translates");
            }
            // Every argument is read, so each refusal in them is reported in one build.
            var arguments = invocation.Arguments.OrderBy(a => a.Parameter?.Ordinal ?? 0).Select(a => Expression(a.Value)).ToList();
            if (arguments.Any(a => a is null))
            {
                return null;
            }
            return Typed(invocation, resultType => new CallExpression(resultType, function, arguments.Select(a => a!).ToEquatableArray()));
        }

        private ModifierExpression? Property(IPropertyReferenceOperation property)
        {
            var syntax = property.Syntax;
            if (property.Property.IsIndexer && property.Arguments.Length == 1)
            {
                return Index(property, property.Instance, property.Arguments[0].Value);
            }
            if (property.Instance is IParameterReferenceOperation)
            {
                return Refuse(Rules.ModifierExpression, syntax, Quote(syntax), "CUDA receives a parameter's value or elements only; pass what you need as another runtime parameter");
            }
            if (property.Instance is { } instance and not IInstanceReferenceOperation && Expression(instance) is null)
            {
                return null;
            }
            return Refuse(Rules.ModifierExternalState, syntax, Quote(syntax), $"it reads the property '{property.Property.Name}'");
        }

        /// <summary><c>array[index]</c>: only array parameters have elements in CUDA.</summary>
        private ModifierExpression? Index(IOperation element, IOperation? array, IOperation index)
        {
            var target = array is IParameterReferenceOperation reference ? parameters.Find(p => p.Name == reference.Parameter.Name) : null;
            if (target is not { IsArray: true })
            {
                // Whatever else is indexed is refused for what it is (a field, a refused local, a call).
                return array is null || Expression(array) is not null
                    ? Refuse(Rules.ModifierExpression, element.Syntax, Quote(element.Syntax), "only array parameters can be indexed")
                    : null;
            }
            if (Expression(index) is not { } position)
            {
                return null;
            }
            if (position.Type != ScalarType.Int)
            {
                return Refuse(Rules.ModifierExpression, index.Syntax, Quote(index.Syntax), "an array index is an int");
            }
            return new IndexExpression(target.Type, target.Name, position);
        }

        private ModifierExpression? Parameter(IParameterReferenceOperation reference)
        {
            var parameter = parameters.Find(p => p.Name == reference.Parameter.Name);
            if (parameter is null)
            {
                return Refuse(Rules.ModifierExpression, reference.Syntax, Quote(reference.Syntax), "only the modifier's own parameters can be read");
            }
            return parameter.IsArray
                ? Refuse(Rules.ModifierExpression, reference.Syntax, Quote(reference.Syntax), $"an array parameter can only be indexed, as in {parameter.Name}[i]")
                : new ParameterExpression(parameter.Type, parameter.Name);
        }

        private ModifierExpression? Unary(IUnaryOperation unary)
        {
            var op = unary.OperatorKind switch
            {
                UnaryOperatorKind.Minus => "-",
                UnaryOperatorKind.Plus => "+",
                UnaryOperatorKind.Not => "!",
                UnaryOperatorKind.BitwiseNegation => "~",
                _ => null,
            };
            if (op is null)
            {
                return Refuse(Rules.ModifierExpression, unary.Syntax, Quote(unary.Syntax), "the unary operators are -, +, ! and ~");
            }
            return Expression(unary.Operand) is { } operand ? Typed(unary, type => new UnaryExpression(type, op, operand)) : null;
        }

        private ModifierExpression? Binary(IBinaryOperation binary)
        {
            var syntax = binary.Syntax;
            var op = binary.OperatorKind switch
            {
                BinaryOperatorKind.Add => "+",
                BinaryOperatorKind.Subtract => "-",
                BinaryOperatorKind.Multiply => "*",
                BinaryOperatorKind.Divide => "/",
                BinaryOperatorKind.Remainder => "%",
                BinaryOperatorKind.LeftShift => "<<",
                BinaryOperatorKind.RightShift => ">>",
                BinaryOperatorKind.And => "&",
                BinaryOperatorKind.Or => "|",
                BinaryOperatorKind.ExclusiveOr => "^",
                BinaryOperatorKind.ConditionalAnd => "&&",
                BinaryOperatorKind.ConditionalOr => "||",
                BinaryOperatorKind.Equals => "==",
                BinaryOperatorKind.NotEquals => "!=",
                BinaryOperatorKind.LessThan => "<",
                BinaryOperatorKind.LessThanOrEqual => "<=",
                BinaryOperatorKind.GreaterThan => ">",
                BinaryOperatorKind.GreaterThanOrEqual => ">=",
                _ => null,
            };
            if (op is null)
            {
                // >>> on int has no CUDA operator of the same meaning.
                return Refuse(Rules.ModifierExpression, syntax, Quote(syntax), "the operator has no CUDA counterpart; use >> on int");
            }
            // Both operands are read, so a refusal on each side is reported in one build.
            var (left, right) = (Expression(binary.LeftOperand), Expression(binary.RightOperand));
            if (left is null || right is null)
            {
                return null;
            }
            if (op is "&" or "|" or "^" && left.Type == ScalarType.Bool)
            {
                // Non-short-circuit bool operators would need their own CUDA spelling; the short-circuit ones mean the same here.
                return Refuse(Rules.ModifierExpression, syntax, Quote(syntax), "'&', '|' and '^' on bool are not supported; use && and || (and != for ^)");
            }
            if (op == "%" && left.Type is ScalarType.Float or ScalarType.Double)
            {
                return Refuse(Rules.ModifierExpression, syntax, Quote(syntax), "CUDA has no '%' on floating-point values; write x - MathF.Truncate(x / y) * y");
            }
            return Typed(binary, type => new BinaryExpression(type, op, left, right));
        }

        private ModifierExpression? Conversion(IConversionOperation conversion)
        {
            if (Expression(conversion.Operand) is not { } operand)
            {
                return null;
            }
            var syntax = conversion.Syntax;
            if (Scalar(conversion.Type) is not { } target)
            {
                var verb = conversion.IsImplicit ? "is converted to" : "has";
                return Refuse(Rules.ModifierType, syntax, Quote(syntax), verb, conversion.Type?.ToDisplayString() ?? "null");
            }
            if (target == operand.Type)
            {
                return operand;
            }
            return conversion.Conversion.IsNumeric
                ? new ConvertExpression(target, operand)
                : Refuse(Rules.ModifierExpression, syntax, Quote(syntax), "only numeric conversions between int, float and double translate");
        }

        /// <summary>Builds the node if the operation's own type is in the subset.</summary>
        private ModifierExpression? Typed(IOperation operation, Func<ScalarType, ModifierExpression> build) =>
            Scalar(operation.Type) is { } type
                ? build(type)
                : Refuse(Rules.ModifierType, operation.Syntax, Quote(operation.Syntax), "has", operation.Type?.ToDisplayString() ?? "null");

        private ModifierExpression? Refuse(Rule rule, SyntaxNode node, params string[] arguments)
        {
            Report(diagnostics, rule, LocationInfo.From(node), arguments);
            return null;
        }
    }
}
