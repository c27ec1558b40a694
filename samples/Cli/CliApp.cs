using System.CommandLine;
using Spectre.Console;
using KernelDsl.Cli.Commands;

namespace KernelDsl.Cli;

/// <summary>
/// The command tree. list / cuda / compile work anywhere; attention runs on the GPU when there is one (else on the CPU
/// reference of the same int8 algorithm, and says so); bench needs a GPU; plot draws a bench CSV.
/// </summary>
public static class CliApp
{
    public static RootCommand Build() => new("KernelDsl: declared kernel variants, their CUDA, INT8 attention on .npy files, and the benchmark.")
    {
        ListCommand.Create(),
        CudaCommand.Create(),
        CompileCommand.Create(),
        AttentionCommand.Create(),
        BenchCommand.Create(),
        PlotCommand.Create(),
    };

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
