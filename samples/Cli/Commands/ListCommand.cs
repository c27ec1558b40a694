using System.CommandLine;
using System.Text.Json;
using KernelDsl.Attention;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Launching;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary>
/// <c>kdsl list</c>: every declared variant with its kernels, threads, shared memory, targets and, for attention, its tile
/// (by its short name, which <c>kdsl attention --tile</c> takes), its modifiers (the C# score and mask methods) and their
/// runtime parameters (what <c>kdsl attention --arg</c> binds). A table on a wide terminal, one tab-separated line per
/// variant otherwise; <c>--format</c> fixes the form.
/// </summary>
internal static class ListCommand
{
    /// <summary>How the list is printed.</summary>
    internal enum Format
    {
        /// <summary>A table on a terminal at least <see cref="CliTable.MinimumWidth"/> columns wide, plain lines otherwise.</summary>
        Auto,
        /// <summary>A header line, then one tab-separated line per variant (multi-valued cells joined by "; ").</summary>
        Plain,
        /// <summary>A table.</summary>
        Table,
        /// <summary>A JSON array of variants, with the tiles' full descriptions too.</summary>
        Json,
    }

    /// <summary>One declared variant as the list shows it.</summary>
    internal sealed record Row(string Name, IReadOnlyList<KernelEntryPoint> Kernels, int MinimumSm, IReadOnlyList<string> Targets,
        string? Tile, string? TileName, AttentionKernelInfo? Attention);

    private static readonly string[] Columns = ["variant", "kernels", "threads", "shared memory", "min SM", "targets", "tile", "modifiers", "parameters"];

    public static Command Create()
    {
        var format = new Option<Format>("--format")
        {
            Description = "plain (one tab-separated line per variant), table, json, or auto: a table on a terminal at least 160 columns wide, plain otherwise.",
            DefaultValueFactory = _ => Format.Auto,
        };
        var command = new Command("list", "List the declared kernel variants.") { format };
        command.SetAction(parse =>
        {
            var rows = Rows();
            var chosen = parse.GetValue(format) switch
            {
                Format.Auto => CliTable.Fits ? Format.Table : Format.Plain,
                var f => f,
            };
            switch (chosen)
            {
                case Format.Json:
                    WriteLines(JsonSerializer.Serialize(rows.Select(ToJson), new JsonSerializerOptions { WriteIndented = true }));
                    break;
                case Format.Table:
                    CliTable.Write(Columns, rows.Select(row => Cells(row, "\n")).ToList(), table: true);
                    AnsiConsole.MarkupLine($"{rows.Count} variants.");
                    break;
                default:
                    CliTable.Write(Columns, rows.Select(row => Cells(row, "\n")).ToList(), table: false);
                    break;
            }
            return 0;
        });
        return command;
    }

    private static void WriteLines(string text)
    {
        AnsiConsole.Profile.Out.Writer.WriteLine(text);
        AnsiConsole.Profile.Out.Writer.Flush();
    }

    internal static IReadOnlyList<Row> Rows()
    {
        var kernels = Int8Attention.Kernels;
        return DeclaredVariants.All.Select(module =>
        {
            var kernel = kernels.FirstOrDefault(k => k.Module == module);
            return new Row(module.Name, module.EntryPoints, module.MinimumSm, module.Targets, kernel?.Tile, kernel?.TileName, kernel);
        }).ToList();
    }

    private static string[] Cells(Row row, string separator) =>
    [
        row.Name,
        string.Join(separator, row.Kernels.Select(e => e.Name)),
        string.Join(separator, row.Kernels.Select(e => e.ThreadsPerBlock.ToString())),
        string.Join(separator, row.Kernels.Select(e => $"{e.SharedMemoryBytes} B")),
        $"sm_{row.MinimumSm}",
        string.Join(", ", row.Targets),
        row.TileName ?? "",
        row.Attention is null ? "" : KernelVariants.DescribeModifiers(row.Attention, separator),
        row.Attention is null ? "" : KernelVariants.DescribeParameters(row.Attention),
    ];

    private static object ToJson(Row row) => new
    {
        name = row.Name,
        kernels = row.Kernels.Select(e => new { name = e.Name, threads = e.ThreadsPerBlock, sharedMemoryBytes = e.SharedMemoryBytes }),
        minimumSm = row.MinimumSm,
        targets = row.Targets,
        tile = row.TileName,
        tileDescription = row.Tile,
        maskModifier = row.Attention?.MaskModifier,
        scoreModifier = row.Attention?.ScoreModifier,
        parameters = row.Attention?.Parameters.Select(p => new { name = p.Name, type = KernelVariants.TypeName(p) }) ?? [],
    };

    /// <summary>The variant whose full name is <paramref name="name"/>, or the only one whose name ends with ".<paramref name="name"/>".</summary>
    /// <exception cref="CliUsageException">No variant or several match (<see cref="KernelVariants.ResolveName"/>, as <c>--variant</c> resolves).</exception>
    public static KernelModuleDefinition Resolve(string name) => KernelVariants.ResolveName(name, DeclaredVariants.All, m => m.Name, "variant", "variants",
        () => $"variant: no declared variant is named '{name}' (or ends with '.{name}'); `kdsl list` shows them. kdsl knows the library's kernels: " +
            "a kernel declared in your own project has its CUDA in its CudaSource constant, and in obj/.../generated/ with <EmitCompilerGeneratedFiles>true</EmitCompilerGeneratedFiles>.");
}
