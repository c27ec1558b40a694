using System.Globalization;
using System.Linq.Expressions;
using System.Reflection;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.IO;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;

namespace KernelDsl.Cli;

/// <summary>
/// The attention kernels of <see cref="Int8Attention.Kernels"/> as the CLI names them, their modifiers' runtime arguments
/// parsed from <c>--arg name=value</c>, and the modifiers' C# methods bound to those arguments for the CPU references.
/// </summary>
internal static class KernelVariants
{
    private static readonly string LibraryNamespace = AttentionVariant.LibraryNamespace;

    /// <summary>The name without the library's namespace (user kernels keep theirs).</summary>
    public static string ShortName(string name) => name.StartsWith(LibraryNamespace, StringComparison.Ordinal) ? name[LibraryNamespace.Length..] : name;

    /// <summary>The short name (e.g. "wgmma-s3") of a declared tile description, as its kernels' generated TileName gives it.</summary>
    public static string TileName(string tile) => Int8Attention.Kernels.FirstOrDefault(k => k.Tile == tile)?.TileName ?? tile;

    /// <summary>"mask SlidingWindow.Visible; score Alibi.Bias", or "" for a kernel without modifiers.</summary>
    public static string DescribeModifiers(AttentionKernelInfo kernel, string separator = "; ")
    {
        var parts = new List<string>();
        if (kernel.MaskModifier is { } mask)
        {
            parts.Add("mask " + ShortName(mask));
        }
        if (kernel.ScoreModifier is { } score)
        {
            parts.Add("score " + ShortName(score));
        }
        return string.Join(separator, parts);
    }

    /// <summary>"window: int", "slopes: float[]", comma-separated; "" when there are none.</summary>
    public static string DescribeParameters(AttentionKernelInfo kernel) =>
        string.Join(", ", kernel.Parameters.Select(p => $"{p.Name}: {TypeName(p)}"));

    internal static string TypeName(AttentionModifierParameter p) => (p.ElementType == typeof(int) ? "int" : "float") + (p.IsArray ? "[]" : "");

    /// <summary>The kernel named <paramref name="name"/> in full, or the one whose name ends with ".<paramref name="name"/>".</summary>
    /// <exception cref="CliUsageException">No kernel or several match; the message lists candidates.</exception>
    public static AttentionKernelInfo Resolve(string name, IReadOnlyList<AttentionKernelInfo> kernels) =>
        ResolveName(name, kernels, k => k.Name, "--variant", "kernels", () =>
        {
            // At most a dozen similar names: a line that lists every kernel is read by nobody.
            const int Shown = 12;
            var near = kernels.Where(k => k.Name.Contains(name, StringComparison.OrdinalIgnoreCase)).Select(k => ShortName(k.Name)).ToList();
            var similar = near.Count == 0 ? ""
                : $"Similar kernels: {string.Join(", ", near.Take(Shown))}{(near.Count > Shown ? $" and {near.Count - Shown} more" : "")}. ";
            return $"--variant '{name}' names no attention kernel or family. Families (the fastest form runs): {string.Join(", ", Families(kernels).Select(ShortName))}. " +
                $"{similar}`kdsl list` shows every kernel.";
        });

    /// <summary>
    /// The u8 forms of the family <paramref name="name"/> names (in full, or the only family whose name ends with
    /// ".<paramref name="name"/>"): a type whose nested attention kernels apply modifiers. Null when no family has that
    /// name, so the name is looked up as a kernel.
    /// </summary>
    public static IReadOnlyList<AttentionKernelInfo>? ResolveFamily(string name, IReadOnlyList<AttentionKernelInfo> kernels)
    {
        var families = Families(kernels);
        if (!families.Contains(name) && !families.Any(f => f.EndsWith("." + name, StringComparison.Ordinal)))
        {
            return null;
        }
        var family = ResolveName(name, families, f => f, "--variant", "families", () => "");
        if (kernels.Any(k => k.Name == name || k.Name.EndsWith("." + name, StringComparison.Ordinal)))
        {
            throw new CliUsageException($"--variant '{name}' names both the family {ShortName(family)} and a kernel: give the kernel's or the family's full name.");
        }
        try
        {
            return Int8Attention.FormsNamed(family, Element.U8);
        }
        catch (ArgumentException e)
        {
            throw new CliUsageException($"--variant {ShortName(family)}: {WithoutParameter(e)}");
        }
    }

    /// <summary>The type a kernel is declared in (its family, for a family's kernels), in full.</summary>
    public static string FamilyOf(AttentionKernelInfo kernel) => kernel.Name[..kernel.Name.LastIndexOf('.')];

    /// <summary>
    /// The types that declare kernels with modifiers, in catalog order; not a kernel that holds its own causal twin
    /// (AlsoCausal), which is a kernel, not a family.
    /// </summary>
    private static List<string> Families(IReadOnlyList<AttentionKernelInfo> kernels) =>
        kernels.Where(k => k.MaskModifier is not null || k.ScoreModifier is not null).Select(FamilyOf).Distinct()
            .Where(family => kernels.All(k => k.Name != family)).ToList();

    /// <summary>A library refusal's message without .NET's " (Parameter 'x')" suffix, for a usage error that names the option instead.</summary>
    public static string WithoutParameter(ArgumentException e) => e.Message.Split(" (Parameter")[0];

    /// <summary>
    /// The one lookup by name of the commands that take a declared name (<c>kdsl attention --variant</c>, <c>kdsl cuda</c>):
    /// the item named <paramref name="name"/> in full, else the only one whose name ends with ".<paramref name="name"/>".
    /// </summary>
    /// <param name="argument">The option or argument the name came from, as the messages name it.</param>
    /// <param name="noun">What the items are, plural ("kernels", "variants").</param>
    /// <param name="none">The message when nothing matches.</param>
    /// <exception cref="CliUsageException">Several items end with the name (the message lists them), or none does.</exception>
    public static T ResolveName<T>(string name, IReadOnlyList<T> items, Func<T, string> nameOf, string argument, string noun, Func<string> none)
    {
        if (items.FirstOrDefault(x => nameOf(x) == name) is { } exact)
        {
            return exact;
        }
        var matches = items.Where(x => nameOf(x).EndsWith("." + name, StringComparison.Ordinal)).ToList();
        return matches.Count switch
        {
            1 => matches[0],
            > 1 => throw new CliUsageException($"{argument} '{name}' is ambiguous; it matches {matches.Count} {noun}: {string.Join(", ", matches.Select(x => ShortName(nameOf(x))).Order(StringComparer.Ordinal))}."),
            _ => throw new CliUsageException(none()),
        };
    }

    /// <summary>
    /// <c>name=value</c> pairs checked against the kernel's parameters: ints and floats in invariant culture, arrays as
    /// <c>@file.npy</c> (1-D int32 or float32). Values are int, float, int[] or float[].
    /// </summary>
    /// <exception cref="CliUsageException">A malformed, repeated, unknown, missing, mistyped or unparsable argument, named.</exception>
    /// <param name="what">How messages name what takes the arguments: "kernel X" by default, "family X" for a family name.</param>
    public static Dictionary<string, object> ParseArguments(AttentionKernelInfo kernel, IReadOnlyList<string> pairs, string? what = null)
    {
        what ??= "kernel " + ShortName(kernel.Name);
        var known = kernel.Parameters.Length == 0 ? "it has none" : "its parameters: " + DescribeParameters(kernel);
        var values = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var pair in pairs)
        {
            var equals = pair.IndexOf('=');
            if (equals <= 0)
            {
                throw new CliUsageException($"--arg '{pair}' is not name=value ({known}).");
            }
            var (name, text) = (pair[..equals].Trim(), pair[(equals + 1)..].Trim());
            var parameter = kernel.Parameters.FirstOrDefault(p => p.Name == name)
                ?? throw new CliUsageException($"--arg {name}: {what} has no modifier parameter '{name}'; {known}.");
            if (values.ContainsKey(name))
            {
                throw new CliUsageException($"--arg {name} is given twice.");
            }
            values[name] = Parse(parameter, text);
            if (!parameter.Allows(values[name]))
            {
                throw new CliUsageException($"--arg {name}={text}: modifier argument '{name}' of {what} {parameter.Rule}.");
            }
        }
        var missing = kernel.Parameters.Where(p => !values.ContainsKey(p.Name)).ToList();
        if (missing.Count > 0)
        {
            throw new CliUsageException($"{char.ToUpperInvariant(what[0])}{what[1..]} needs " +
                string.Join(", ", missing.Select(p => $"--arg {p.Name}={(p.IsArray ? "@file.npy" : "VALUE")} ({TypeName(p)})")) + ".");
        }
        CheckNondecreasing(kernel, values);
        return values;
    }

    /// <summary>
    /// An array whose modifier parameter is [Nondecreasing] must never decrease: the generated block classifier bounds it
    /// over a block by its ends, and the library does not check the promise (a decreasing array gives wrong results, no
    /// error; the CPU references, calling the C# method per pair, do not notice either). Read from the modifier methods'
    /// own declarations, as the generator reads them.
    /// </summary>
    /// <exception cref="CliUsageException">An array decreases; the message names the argument and the first index where it does.</exception>
    private static void CheckNondecreasing(AttentionKernelInfo kernel, IReadOnlyDictionary<string, object> values)
    {
        var promised = new[] { kernel.MaskModifier, kernel.ScoreModifier }.OfType<string>().Select(FindMethod)
            .SelectMany(m => m.GetParameters()).Where(p => p.GetCustomAttribute<NondecreasingAttribute>() is not null).Select(p => p.Name!).Distinct();
        foreach (var name in promised)
        {
            var (index, before, after) = values.GetValueOrDefault(name) switch
            {
                int[] ints => FirstDecrease(ints),
                float[] floats => FirstDecrease(floats),
                _ => (-1, "", ""),
            };
            if (index > 0)
            {
                throw new CliUsageException($"--arg {name} must never decrease ({name}[i] ≤ {name}[i + 1]: the modifier's parameter is [Nondecreasing]), " +
                    $"but it decreases at index {index}: {name}[{index - 1}] = {before}, {name}[{index}] = {after}.");
            }
        }

        static (int Index, string Before, string After) FirstDecrease<T>(T[] array) where T : System.Numerics.INumber<T>
        {
            for (var i = 1; i < array.Length; i++)
            {
                if (array[i] < array[i - 1])
                {
                    return (i, array[i - 1].ToString(null, CultureInfo.InvariantCulture), array[i].ToString(null, CultureInfo.InvariantCulture));
                }
            }
            return (-1, "", "");
        }
    }

    private static object Parse(AttentionModifierParameter parameter, string text)
    {
        var name = parameter.Name;
        var isInt = parameter.ElementType == typeof(int);
        if (parameter.IsArray)
        {
            if (!text.StartsWith('@') || text.Length == 1)
            {
                throw new CliUsageException($"--arg {name} takes an array ({TypeName(parameter)}): give a 1-D {(isInt ? "int32" : "float32")} .npy file as {name}=@file.npy, not '{text}'.");
            }
            var path = text[1..];
            if (!File.Exists(path))
            {
                throw new CliUsageException($"--arg {name}: no file '{path}'.");
            }
            try
            {
                return isInt ? Check(NpyFile.ReadInt32(path)) : Check(NpyFile.ReadSingle(path));
            }
            catch (InvalidDataException e)
            {
                throw new CliUsageException($"--arg {name}: {e.Message} It must be a 1-D {(isInt ? "int32 ('<i4')" : "float32 ('<f4')")} array.");
            }
        }
        if (text.StartsWith('@'))
        {
            throw new CliUsageException($"--arg {name} is a scalar {TypeName(parameter)}, not an array: give {name}=VALUE.");
        }
        if (isInt)
        {
            return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i)
                ? i : throw new CliUsageException($"--arg {name}: '{text}' is not an int (a 32-bit integer).");
        }
        return float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && float.IsFinite(f)
            ? f : throw new CliUsageException($"--arg {name}: '{text}' is not a finite float.");

        T[] Check<T>(NpyArray<T> array) where T : unmanaged => array.Shape.Length == 1
            ? array.Data
            : throw new CliUsageException($"--arg {name}: '{text[1..]}' has shape ({string.Join(", ", array.Shape)}); a 1-D array is needed.");
    }

    /// <summary>The kernel's score and mask methods with <paramref name="values"/> bound, for the CPU references.</summary>
    public static AttentionModifiers CpuModifiers(AttentionKernelInfo kernel, IReadOnlyDictionary<string, object> values) => new(
        Score: kernel.ScoreModifier is { } score ? Bind<ScoreModifier>(FindMethod(score), values, typeof(float), typeof(int), typeof(int), typeof(int), typeof(int)) : null,
        Mask: kernel.MaskModifier is { } mask ? Bind<MaskModifier>(FindMethod(mask), values, typeof(int), typeof(int), typeof(int), typeof(int)) : null);

    /// <summary>"Ns.Outer.Inner.Method" → the static method, the declaring type found among the loaded assemblies' types.</summary>
    public static MethodInfo FindMethod(string qualified)
    {
        var dot = qualified.LastIndexOf('.');
        var (typeName, methodName) = (qualified[..dot], qualified[(dot + 1)..]);
        var type = AppDomain.CurrentDomain.GetAssemblies().SelectMany(LoadableTypes).FirstOrDefault(t => t.FullName?.Replace('+', '.') == typeName)
            ?? throw new InvalidOperationException($"The modifier {qualified}: no loaded type {typeName}.");
        var methods = type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static).Where(m => m.Name == methodName).ToList();
        return methods.Count == 1 ? methods[0]
            : methods.FirstOrDefault(m => m.GetCustomAttributes().Any(a => a.GetType().Name is "MaskModifierAttribute" or "ScoreModifierAttribute"))
            ?? throw new InvalidOperationException($"The modifier {qualified}: {type.FullName} has {methods.Count} static methods named {methodName}.");
    }

    private static IEnumerable<Type> LoadableTypes(Assembly assembly)
    {
        try
        {
            return assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException e)
        {
            return e.Types.OfType<Type>();
        }
    }

    /// <summary>
    /// A <typeparamref name="TDelegate"/> calling <paramref name="method"/> with its leading parameters passed through and
    /// the rest bound by name from <paramref name="values"/>: scalars as constants, arrays as T[] or, for
    /// <c>ReadOnlySpan&lt;T&gt;</c> parameters (which reflection cannot pass), through the array's implicit conversion
    /// inside a compiled expression tree.
    /// </summary>
    public static TDelegate Bind<TDelegate>(MethodInfo method, IReadOnlyDictionary<string, object> values, params Type[] leading) where TDelegate : Delegate
    {
        var parameters = method.GetParameters();
        if (parameters.Length < leading.Length || parameters.Take(leading.Length).Select(p => p.ParameterType).Where((t, i) => t != leading[i]).Any())
        {
            throw new InvalidOperationException($"{method.DeclaringType}.{method.Name} does not start with ({string.Join(", ", leading.Select(t => t.Name))}).");
        }
        var passed = leading.Select((t, i) => Expression.Parameter(t, parameters[i].Name)).ToArray();
        var arguments = new List<Expression>(passed);
        foreach (var parameter in parameters.Skip(leading.Length))
        {
            if (!values.TryGetValue(parameter.Name!, out var value))
            {
                throw new InvalidOperationException($"{method.DeclaringType}.{method.Name} needs '{parameter.Name}', which is not bound.");
            }
            var type = parameter.ParameterType;
            arguments.Add(type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ReadOnlySpan<>)
                ? Expression.Convert(Expression.Constant(value, value.GetType()), type)
                : Expression.Constant(type.IsArray ? value : Convert.ChangeType(value, type, CultureInfo.InvariantCulture), type));
        }
        return Expression.Lambda<TDelegate>(Expression.Call(method, arguments), passed).Compile();
    }

    /// <summary>
    /// Calls the modifiers at the corners of the problem (first and last batch, head, query and key) so that an array too
    /// short for the dimension it is indexed by is an error before any work, not a crash in the CPU reference or an
    /// out-of-bounds read on the GPU.
    /// </summary>
    public static void Probe(AttentionKernelInfo kernel, AttentionModifiers modifiers, AttentionShape shape)
    {
        foreach (var b in new[] { 0, shape.Batch - 1 }.Distinct())
        foreach (var h in new[] { 0, shape.HeadsQ - 1 }.Distinct())
        foreach (var q in new[] { 0, shape.TokensQ - 1 }.Distinct())
        foreach (var k in new[] { 0, shape.TokensKv - 1 }.Distinct())
        {
            Try(kernel.MaskModifier, () => modifiers.Mask?.Invoke(b, h, q, k));
            Try(kernel.ScoreModifier, () => modifiers.Score?.Invoke(0f, b, h, q, k));

            void Try(string? name, Action call)
            {
                try
                {
                    call();
                }
                catch (Exception e)
                {
                    var arrays = string.Join(", ", kernel.Parameters.Where(p => p.IsArray).Select(p => p.Name));
                    throw new CliUsageException($"The modifier {ShortName(name ?? "?")} throws {e.GetType().Name} at (b, h, q, k) = ({b}, {h}, {q}, {k}) " +
                        $"for B = {shape.Batch}, Hq = {shape.HeadsQ}, Sq = {shape.TokensQ}, Sk = {shape.TokensKv}: {e.Message}" +
                        (arrays.Length > 0 ? $" Is an array argument ({arrays}) shorter than the dimension it is indexed by?" : ""));
                }
            }
        }
    }
}
