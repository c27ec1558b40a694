using KernelDsl.Cli;
using Spectre.Console;

namespace CliTests;

/// <summary>
/// Test classes that run the CLI in process share its global console (Spectre's AnsiConsole and CliApp.Errors) and the
/// kernel-override environment variable, so they run one at a time.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CliCollection
{
    public const string Name = "kdsl in process";
}

/// <summary>What one run of the CLI printed and returned.</summary>
/// <param name="Output">Standard output (Spectre's console).</param>
/// <param name="Errors">Standard error (CliApp.Errors): the one-line error messages.</param>
public sealed record CliRun(int Code, string Output, string Errors)
{
    /// <summary>Both streams, as a terminal shows them.</summary>
    public string All => Output + Errors;

    public string[] ErrorLines => Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public override string ToString() => $"exit {Code}\n--- stdout\n{Output}\n--- stderr\n{Errors}";
}

/// <summary>Runs the CLI as Program does (CliApp.Run), its console captured: no terminal, no colours, wide enough that no message wraps.</summary>
public static class CliRunner
{
    public static CliRun Run(params string[] args)
    {
        var (output, errors) = (new StringWriter(), new StringWriter());
        var (previous, previousErrors) = (AnsiConsole.Console, CliApp.Errors);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = 10_000;
        AnsiConsole.Console = console;
        CliApp.Errors = errors;
        try
        {
            return new CliRun(CliApp.Run(args), output.ToString(), errors.ToString());
        }
        finally
        {
            (AnsiConsole.Console, CliApp.Errors) = (previous, previousErrors);
        }
    }
}
