using System.CommandLine;
using System.CommandLine.Parsing;
using System.Reflection;

namespace KernelDsl.Cli;

/// <summary>
/// One parser for every enum-valued option of the command tree: a value is one of the enum's names (any case) or an
/// error naming the option and the names, e.g. <c>--format: 'xml' is not one of Auto, Plain, Table, Json.</c>, instead
/// of System.CommandLine's message with the enum's internal type name. Numbers are names of no member, so they are
/// refused too (Enum.TryParse would take "7" as an undeclared value).
/// </summary>
internal static class EnumOptions
{
    private static readonly MethodInfo UseOnMethod = typeof(EnumOptions).GetMethod(nameof(UseOn), BindingFlags.NonPublic | BindingFlags.Static)!;

    private static readonly MethodInfo UseOnOptionalMethod = typeof(EnumOptions).GetMethod(nameof(UseOnOptional), BindingFlags.NonPublic | BindingFlags.Static)!;

    /// <summary>The enum an option takes, whether it is <c>T</c> or <c>T?</c> (an option whose absence means a default); else null.</summary>
    public static Type? EnumType(Option option) =>
        option.ValueType.IsEnum ? option.ValueType : Nullable.GetUnderlyingType(option.ValueType) is { IsEnum: true } underlying ? underlying : null;

    /// <summary>Gives every enum option of <paramref name="command"/> and its subcommands the parser; returns the command.</summary>
    public static TCommand WithEnumParsers<TCommand>(this TCommand command) where TCommand : Command
    {
        foreach (var option in command.Options)
        {
            if (EnumType(option) is { } type)
            {
                (option.ValueType.IsEnum ? UseOnMethod : UseOnOptionalMethod).MakeGenericMethod(type).Invoke(null, [option]);
            }
        }
        foreach (var subcommand in command.Subcommands)
        {
            subcommand.WithEnumParsers();
        }
        return command;
    }

    private static void UseOn<T>(Option option) where T : struct, Enum => ((Option<T>)option).CustomParser = Parse<T>;

    private static void UseOnOptional<T>(Option option) where T : struct, Enum => ((Option<T?>)option).CustomParser = result => Parse<T>(result);

    private static T Parse<T>(ArgumentResult result) where T : struct, Enum
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (Enum.GetNames<T>().FirstOrDefault(n => string.Equals(n, text, StringComparison.OrdinalIgnoreCase)) is { } name)
        {
            return Enum.Parse<T>(name);
        }
        var option = result.Parent is OptionResult parent ? parent.Option.Name : result.Argument.Name;
        result.AddError($"{option}: '{text}' is not one of {string.Join(", ", Enum.GetNames<T>())}.");
        return default;
    }
}
