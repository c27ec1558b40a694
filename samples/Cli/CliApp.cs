using System.CommandLine;
using System.CommandLine.Help;
using Spectre.Console;
using KernelDsl.Cli.Commands;

namespace KernelDsl.Cli;

/// <summary>A mistake on the command line or in its input files: printed as one line naming the argument, exit code 2.</summary>
internal sealed class CliUsageException(string message) : Exception(message);

/// <summary>
/// The command tree. list / cuda / compile work anywhere; attention runs on the GPU when there is one (else on the CPU
/// reference of the declared kernel it would run, and says so); bench needs a GPU; plot draws a bench CSV.
/// </summary>
public static class CliApp
{
    /// <summary>Exit code of a usage error (a bad argument or input file): the command did no work.</summary>
    public const int UsageError = 2;

    /// <summary>Exit code of a failure that is not the caller's mistake (a driver error, a kernel that fails to compile).</summary>
    public const int Failure = 1;

    private const string VerboseName = "--verbose";

    /// <summary>
    /// Where errors go: standard error by default. A plain writer, not a Spectre console, so that an error is one line
    /// whatever the width (Spectre wraps at the terminal's, or at 80 columns when redirected).
    /// </summary>
    internal static TextWriter Errors { get; set; } = Console.Error;

    public static RootCommand Build() => new RootCommand("KernelDsl: declared kernel variants, their CUDA, INT8 attention on .npy files, and the benchmark.")
    {
        new Option<bool>(VerboseName) { Description = "On an error, also print its details (exception type, inner errors, stack).", Recursive = true },
        ListCommand.Create(),
        CudaCommand.Create(),
        CompileCommand.Create(),
        AttentionCommand.Create(),
        BenchCommand.Create(),
        PlotCommand.Create(),
    }.WithEnumParsers();

    /// <summary>
    /// The one entry point (Program and the tests): parses, runs the command, and turns every error into one line.
    /// A parse error or a <see cref="CliUsageException"/> is a usage error (exit code 2); anything else is a failure
    /// (exit code 1) with its type and message, and its stack only under --verbose.
    /// </summary>
    public static int Run(params string[] args)
    {
        var parse = Build().Parse(args);
        var verbose = parse.GetValue<bool>(VerboseName);
        if (parse.Errors.Count > 0 && parse.Action is not HelpAction)
        {
            // System.CommandLine would print every error and the whole help; one line with the way to the help is enough.
            var command = string.Join(' ', parse.CommandResult.Command is RootCommand ? ["kdsl"] : new[] { "kdsl", parse.CommandResult.Command.Name });
            // "Required command was not provided." says nothing when another error names the word that was not a command.
            var messages = parse.Errors.Select(e => e.Message).ToList();
            if (messages.Count > 1)
            {
                messages.RemoveAll(m => m.StartsWith("Required command was not provided", StringComparison.Ordinal));
            }
            return Error(UsageError, $"{string.Join(" ", messages)} (`{command} --help` lists the options.)");
        }
        try
        {
            // Help and System.CommandLine's own messages go where the commands' output goes (tests capture both).
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Output = AnsiConsole.Profile.Out.Writer, Error = Errors });
        }
        catch (CliUsageException e)
        {
            return Error(UsageError, e.Message);
        }
        catch (Exception e)
        {
            var code = Error(Failure, $"kdsl failed: {e.GetType().Name}: {OneLine(e.Message)}" + (verbose ? "" : $" ({VerboseName} shows the details.)"));
            if (verbose)
            {
                Errors.WriteLine(e.ToString());
            }
            return code;
        }
    }

    /// <summary>Prints <paramref name="message"/> as one line (red on a terminal) on <see cref="Errors"/> and returns <paramref name="code"/>.</summary>
    internal static int Error(int code, string message)
    {
        var colour = ReferenceEquals(Errors, Console.Error) && !Console.IsErrorRedirected;
        Errors.WriteLine(colour ? $"\e[31m{OneLine(message)}\e[0m" : OneLine(message));
        Errors.Flush();
        return code;
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();

    /// <summary>An output file must be writable, checked before the work that fills it.</summary>
    /// <exception cref="CliUsageException">The path is a directory, its directory does not exist, or it cannot be opened for writing.</exception>
    internal static void CheckOutputFile(FileInfo file, string option)
    {
        if (Directory.Exists(file.FullName))
        {
            throw new CliUsageException($"{option} '{file.FullName}' is a directory: give a file path such as {Path.Combine(file.FullName, "out" + (file.Extension is { Length: > 0 } e ? e : ".npy"))}.");
        }
        if (file.Directory is not { Exists: true })
        {
            throw new CliUsageException($"{option} '{file.FullName}': the directory '{file.DirectoryName}' does not exist: create it first, or write elsewhere.");
        }
        // Opened for writing now (and removed again if it was not there), so a read-only place fails before the work.
        var existed = file.Exists;
        try
        {
            using (File.Open(file.FullName, FileMode.OpenOrCreate, FileAccess.Write))
            {
            }
            if (!existed)
            {
                File.Delete(file.FullName);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"{option} '{file.FullName}' cannot be written ({e.Message}): write elsewhere.");
        }
    }

    /// <summary>An input file must exist.</summary>
    /// <exception cref="CliUsageException">It does not, or it is a directory.</exception>
    internal static void CheckInputFile(FileInfo file, string option, string what)
    {
        if (!file.Exists)
        {
            throw new CliUsageException($"{option}: no file '{file.FullName}'{(Directory.Exists(file.FullName) ? " (it is a directory)" : "")}: give {what}.");
        }
    }

    /// <summary>Says so when hand-edited sources replace generated ones, so no number is mistaken for the generated kernels'.</summary>
    internal static void WarnIfSourcesOverridden()
    {
        if (KernelSourceOverride.Directory is { } directory)
        {
            var files = Directory.Exists(directory) ? Directory.GetFiles(directory, "*.cu").Select(Path.GetFileName) : [];
            AnsiConsole.MarkupLine($"[yellow]{KernelSourceOverride.DirectoryVariable}={Markup.Escape(directory)}[/]: hand-edited sources replace the generated ones of: {Markup.Escape(string.Join(", ", files))}");
        }
    }
}
