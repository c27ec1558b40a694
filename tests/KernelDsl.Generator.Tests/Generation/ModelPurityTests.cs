using System.Reflection;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace GeneratorTests.Generation;

/// <summary>The model holds values only: no Roslyn symbol, compilation or syntax can hide in a cached spec.</summary>
public class ModelPurityTests
{
    private static readonly Assembly Generator = typeof(KernelSpec).Assembly;

    [Fact]
    public void No_model_type_reaches_a_Roslyn_type()
    {
        var modelTypes = Generator.GetTypes().Where(t => t.Namespace is "KernelDsl.Generator.Model" or "KernelDsl.Generator.Atoms" or "KernelDsl.Generator.Validation");
        var seen = new HashSet<Type>();
        var offenders = new List<string>();
        foreach (var type in modelTypes)
        {
            Walk(type, type.Name, seen, offenders);
        }
        Assert.Empty(offenders);
    }

    /// <summary>What the pipeline caches (declaration results, diagnostics) may hold Roslyn value types such as TextSpan, but never a symbol, syntax, compilation or location.</summary>
    [Fact]
    public void Cached_pipeline_values_hold_no_symbol_syntax_or_compilation()
    {
        Type[] forbidden = [typeof(Microsoft.CodeAnalysis.ISymbol), typeof(Microsoft.CodeAnalysis.SyntaxNode), typeof(Microsoft.CodeAnalysis.SyntaxTree),
            typeof(Microsoft.CodeAnalysis.Compilation), typeof(Microsoft.CodeAnalysis.SemanticModel), typeof(Microsoft.CodeAnalysis.Location),
            typeof(Microsoft.CodeAnalysis.AttributeData), typeof(Microsoft.CodeAnalysis.SyntaxToken)];
        var seen = new HashSet<Type>();
        var offenders = new List<string>();
        foreach (var root in new[] { typeof(KernelDsl.Generator.Parsing.DeclarationResult), typeof(KernelDsl.Generator.GeneratedSource) })
        {
            WalkFor(root, root.Name, seen, offenders, forbidden);
        }
        Assert.Empty(offenders);
    }

    private static void WalkFor(Type type, string path, HashSet<Type> seen, List<string> offenders, Type[] forbidden)
    {
        if (forbidden.Any(f => f.IsAssignableFrom(type)))
        {
            offenders.Add($"{path} is {type.FullName}");
            return;
        }
        if (!seen.Add(type) || type.IsPrimitive || type == typeof(string) || type.IsEnum)
        {
            return;
        }
        foreach (var argument in type.IsGenericType ? type.GetGenericArguments() : [])
        {
            WalkFor(argument, $"{path}<{argument.Name}>", seen, offenders, forbidden);
        }
        if (type.IsArray)
        {
            WalkFor(type.GetElementType()!, path + "[]", seen, offenders, forbidden);
        }
        if (type.Assembly != Generator)
        {
            return;
        }
        // Abstract records (KernelSpec) hide their concrete fields: walk every type deriving from them too.
        foreach (var derived in Generator.GetTypes().Where(t => t != type && type.IsAssignableFrom(t)))
        {
            WalkFor(derived, $"{path}:{derived.Name}", seen, offenders, forbidden);
        }
        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            WalkFor(field.FieldType, $"{path}.{field.Name}", seen, offenders, forbidden);
        }
    }

    [Fact]
    public void Specs_compare_by_value()
    {
        KernelSpec Make() => new GemmSpec
        {
            Type = new TypeDeclaration("Users", "Gemm", "class", true, KernelDsl.Generator.Helpers.EquatableArray<string>.Empty),
            Targets = new[] { Sm.Sm80 }.ToEquatableArray(),
            SmemLayouts = new[] { new SmemLayoutSpec(Operand.A, Element.S8, new Swizzle(3, 4, 3)) }.ToEquatableArray(),
            CopyAtoms = new[] { new CopyAtomSpec(Operand.B, CopyAtomKind.LdsmTransPrmt) }.ToEquatableArray(),
            Mma = MmaAtomKind.M16N8K32_S32S8S8,
            BlockM = 64, BlockN = 64, BlockK = 64, Warps = 4, WarpsM = 0, Stages = 2, Layout = GemmLayout.NN, Output = GemmOutput.S32,
        };
        Assert.Equal(Make(), Make());
        Assert.Equal(Make().GetHashCode(), Make().GetHashCode());
        Assert.NotEqual(Make(), ((GemmSpec)Make()) with { Stages = 3 });
    }

    private static void Walk(Type type, string path, HashSet<Type> seen, List<string> offenders)
    {
        if (type.Namespace?.StartsWith("Microsoft.CodeAnalysis", StringComparison.Ordinal) == true)
        {
            offenders.Add($"{path} is {type.FullName}");
            return;
        }
        if (!seen.Add(type) || type.IsPrimitive || type == typeof(string) || type.IsEnum)
        {
            return;
        }
        foreach (var argument in type.IsGenericType ? type.GetGenericArguments() : [])
        {
            Walk(argument, $"{path}<{argument.Name}>", seen, offenders);
        }
        if (type.IsArray)
        {
            Walk(type.GetElementType()!, path + "[]", seen, offenders);
        }
        if (type.Assembly != Generator)
        {
            return;
        }
        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            Walk(field.FieldType, $"{path}.{field.Name}", seen, offenders);
        }
    }
}
