using System.CommandLine;
using KernelDsl.Attention;
using KernelDsl.Attention.FlashAttention;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary>
/// <c>kdsl list</c>: every declared variant with its kernels, threads, shared memory, targets and, for attention, its tile,
/// its modifiers (the C# score and mask methods) and their runtime parameters (what <c>kdsl attention --arg</c> binds).
/// A table on a terminal; tab-separated lines when the output is piped or redirected.
/// </summary>
internal static class ListCommand
{
    public static Command Create()
    {
        var command = new Command("list", "List the declared kernel variants.");
        command.SetAction(_ =>
        {
            var kernels = Int8Attention.Kernels;
            var rows = DeclaredVariants.All.Select(module =>
            {
                var kernel = kernels.FirstOrDefault(k => k.Module == module);
                return new[]
                {
                    module.Name,
                    string.Join("\n", module.EntryPoints.Select(e => e.Name)),
                    string.Join("\n", module.EntryPoints.Select(e => e.ThreadsPerBlock.ToString())),
                    string.Join("\n", module.EntryPoints.Select(e => $"{e.SharedMemoryBytes} B")),
                    $"sm_{module.MinimumSm}",
                    string.Join(", ", module.Targets),
                    AttentionVariant.All.FirstOrDefault(v => v.Module == module)?.Tile ?? kernel?.Tile ?? "",
                    kernel is null ? "" : KernelVariants.DescribeModifiers(kernel, "\n"),
                    kernel is null ? "" : KernelVariants.DescribeParameters(kernel),
                };
            }).ToList();
            string[] columns = ["variant", "kernels", "threads", "shared memory", "min SM", "targets", "tile", "modifiers", "parameters"];
            if (!AnsiConsole.Profile.Out.IsTerminal)
            {
                // Piped or redirected: one tab-separated line per variant (multi-line cells joined by "; "), never wrapped
                // at the 80 columns a table assumes without a terminal, so grep, cut and awk see whole rows.
                var writer = AnsiConsole.Profile.Out.Writer;
                writer.WriteLine(string.Join('\t', columns));
                foreach (var row in rows)
                {
                    writer.WriteLine(string.Join('\t', row.Select(cell => cell.Replace("\n", "; "))));
                }
                writer.WriteLine($"{rows.Count} variants.");
                writer.Flush();
                return 0;
            }
            var table = new Table().AddColumns(columns);
            foreach (var row in rows)
            {
                table.AddRow(row.Select(Markup.Escape).ToArray());
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"{rows.Count} variants.");
            return 0;
        });
        return command;
    }

    /// <summary>The variant whose full name is <paramref name="name"/> or ends with ".<paramref name="name"/>".</summary>
    public static Launching.KernelModuleDefinition? Find(string name) =>
        DeclaredVariants.All.FirstOrDefault(m => m.Name == name) ?? DeclaredVariants.All.FirstOrDefault(m => m.Name.EndsWith("." + name, StringComparison.Ordinal));
}
