using System.CommandLine;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary><c>kdsl compile</c>: NVRTC-compile every declared variant with the ptxas report.</summary>
internal static class CompileCommand
{
    public static Command Create()
    {
        var arch = new Option<string?>("--arch") { Description = "One architecture (sm_80, sm_90, ...); by default each variant's declared targets." };
        var only = new Option<string?>("--only") { Description = "Only variants whose name contains this text (e.g. Wgmma)." };
        var command = new Command("compile", "Compile every declared variant with NVRTC and show registers and spills.") { arch, only };
        command.SetAction(parse =>
        {
            if (!NvrtcCompiler.TryLoad(out var nvrtc, out var trace))
            {
                AnsiConsole.MarkupLine("[red]NVRTC not found.[/]");
                AnsiConsole.WriteLine(trace);
                return 2;
            }
            CliApp.WarnIfSourcesOverridden();
            var table = new Table().AddColumns("kernel", "arch", "registers", "spill bytes", "stack", "ms");
            var (spills, failures, advisories) = (0, new List<string>(), new List<string>());
            AnsiConsole.Progress().Start(progress =>
            {
                var modules = Attention.DeclaredVariants.All.Where(m => parse.GetValue(only) is not { } text || m.Name.Contains(text, StringComparison.Ordinal)).ToList();
                var task = progress.AddTask($"NVRTC {nvrtc.Version}", maxValue: modules.Count);
                foreach (var module in modules)
                {
                    foreach (var target in parse.GetValue(arch) is { } one ? [one] : module.Targets.ToArray())
                    {
                        NvrtcResult result;
                        try
                        {
                            result = nvrtc.Compile(NvrtcRequest.ForModule(module, target, ptxasVerbose: true));
                        }
                        catch (NvrtcCompilationException error)
                        {
                            // Report every variant that fails, not only the first.
                            failures.Add($"{module.Name} {target}: {error.Message}");
                            table.AddRow(Markup.Escape(module.Name), target, "[red]failed[/]", "", "", "");
                            continue;
                        }
                        // ptxas advisories (e.g. wgmma serialized, performance warnings) are worth seeing; the per-kernel info lines are in the table.
                        foreach (var line in result.Log.Split('\n').Where(l => l.Contains("warning", StringComparison.OrdinalIgnoreCase) || l.Contains("Performance", StringComparison.Ordinal)))
                        {
                            advisories.Add($"{module.Name} {target}: {line.Trim()}");
                        }
                        foreach (var kernel in result.Kernels)
                        {
                            spills += kernel.SpillLoadBytes + kernel.SpillStoreBytes;
                            table.AddRow(Markup.Escape(kernel.Name), target, kernel.Registers.ToString(), (kernel.SpillLoadBytes + kernel.SpillStoreBytes).ToString(),
                                kernel.StackFrameBytes.ToString(), result.Elapsed.TotalMilliseconds.ToString("F0"));
                        }
                    }
                    task.Increment(1);
                }
            });
            AnsiConsole.Write(table);
            foreach (var advisory in advisories)
            {
                AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(advisory)}[/]");
            }
            foreach (var failure in failures)
            {
                AnsiConsole.MarkupLine($"[red]{Markup.Escape(failure)}[/]");
            }
            AnsiConsole.MarkupLine(spills == 0 ? "[green]No kernel spills.[/]" : $"[red]{spills} spill bytes.[/]");
            return spills == 0 && failures.Count == 0 ? 0 : 1;
        });
        return command;
    }
}
