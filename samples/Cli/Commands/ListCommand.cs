using System.CommandLine;
using KernelDsl.Attention;
using KernelDsl.Attention.FlashAttention;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary><c>kdsl list</c>: every declared variant with its kernels, threads, shared memory, targets and (attention) tile.</summary>
internal static class ListCommand
{
    public static Command Create()
    {
        var command = new Command("list", "List the declared kernel variants.");
        command.SetAction(_ =>
        {
            var table = new Table().AddColumns("variant", "kernels", "threads", "shared memory", "min SM", "targets", "tile");
            foreach (var module in DeclaredVariants.All)
            {
                table.AddRow(
                    Markup.Escape(module.Name),
                    Markup.Escape(string.Join("\n", module.EntryPoints.Select(e => e.Name))),
                    string.Join("\n", module.EntryPoints.Select(e => e.ThreadsPerBlock.ToString())),
                    string.Join("\n", module.EntryPoints.Select(e => $"{e.SharedMemoryBytes} B")),
                    $"sm_{module.MinimumSm}",
                    string.Join(", ", module.Targets),
                    Markup.Escape(AttentionVariant.All.FirstOrDefault(v => v.Module == module)?.Tile ?? ""));
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"{DeclaredVariants.All.Count} variants.");
            return 0;
        });
        return command;
    }

    /// <summary>The variant whose full name is <paramref name="name"/> or ends with ".<paramref name="name"/>".</summary>
    public static Launching.KernelModuleDefinition? Find(string name) =>
        DeclaredVariants.All.FirstOrDefault(m => m.Name == name) ?? DeclaredVariants.All.FirstOrDefault(m => m.Name.EndsWith("." + name, StringComparison.Ordinal));
}
