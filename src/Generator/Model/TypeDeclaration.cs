using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>Where generated members go: the declaring type and the types around it, as text.</summary>
/// <param name="Namespace">Empty for the global namespace.</param>
/// <param name="Name">The declaring type's name.</param>
/// <param name="Keyword">"class", "struct" or "record".</param>
/// <param name="IsStatic">Whether the declaration is static (the generated part must match).</param>
/// <param name="ContainingTypes">Outer types, outermost first, each as its partial declaration ("static partial class Outer").</param>
/// <param name="Accessibility">
/// "public " or "internal " for a type only the generator declares (an [AttentionFamily]'s kernels); empty where the
/// user's own declaration says it.
/// </param>
public sealed record TypeDeclaration(
    string Namespace,
    string Name,
    string Keyword,
    bool IsStatic,
    EquatableArray<string> ContainingTypes,
    string Accessibility = "")
{
    /// <summary>The type's partial declaration without its accessibility ("static partial class Outer"): how a type nested in it names it.</summary>
    public string Declaration => (IsStatic ? "static " : "") + "partial " + Keyword + " " + Name;

    /// <summary>A class <paramref name="name"/> nested in this type that only the generator declares (a family's kernel, a causal twin).</summary>
    public TypeDeclaration Nested(string name, bool isStatic, string accessibility) => this with
    {
        Name = name,
        Keyword = "class",
        IsStatic = isStatic,
        Accessibility = accessibility,
        ContainingTypes = System.Linq.Enumerable.Append(ContainingTypes, Declaration).ToEquatableArray(),
    };

    public string FullName => (Namespace.Length == 0 ? "" : Namespace + ".") +
        string.Concat(System.Linq.Enumerable.Select(ContainingTypes, c => c.Substring(c.LastIndexOf(' ') + 1) + ".")) + Name;

    /// <summary>A C identifier derived from the full name, for kernel symbols.</summary>
    public string Symbol
    {
        get
        {
            var chars = FullName.ToCharArray();
            for (var i = 0; i < chars.Length; i++)
            {
                if (!char.IsLetterOrDigit(chars[i]))
                {
                    chars[i] = '_';
                }
            }
            return new string(chars);
        }
    }
}
