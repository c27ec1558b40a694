using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using KernelDsl.Launching;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary>
/// <c>kdsl compile</c>: NVRTC-compile every declared variant with the ptxas report. Targets the NVRTC at hand cannot
/// build (sm_90a before CUDA 12, architectures it does not list) and variants an explicit --arch cannot run are skipped with the reason; the exit code
/// is 1 only for a real compile failure or a spill.
/// </summary>
internal static partial class CompileCommand
{
    /// <summary>
    /// NVRTC's warning #177, "function declared but never referenced": every generated module carries the generator's
    /// whole helper library (conversions, min/max, …), so most of them go unused in any one module. The warning says
    /// nothing about the kernels and buried the report (218 lines), so <c>kdsl compile</c> silences it.
    /// </summary>
    internal const string SuppressUnusedHelpers = "-diag-suppress=177";

    /// <summary>An NVRTC architecture as --arch gives it: sm_80 is capability 80, sm_90a the architecture-specific sm_90.</summary>
    internal sealed record Arch(string Name, int Capability, bool Specific)
    {
        public static Arch? Parse(string text) => ArchPattern().Match(text) is { Success: true } m
            ? new Arch(text, int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m.Groups[2].Value == "a")
            : null;

        /// <summary>Why <paramref name="module"/> cannot be built for this architecture, or null: below its minimum SM, or an sm_90a-only module on another target.</summary>
        public string? CannotBuild(KernelModuleDefinition module) =>
            Capability < module.MinimumSm ? $"needs sm_{module.MinimumSm} or newer"
            : module.RequiresArchSpecific && (!Specific || !module.RunsOn(Capability)) ? $"uses architecture-specific instructions: only {string.Join(", ", module.Targets)}"
            : null;
    }

    [GeneratedRegex("^sm_([0-9]{2,3})(a|f)?$", RegexOptions.CultureInvariant)]
    private static partial Regex ArchPattern();

    public static Command Create()
    {
        var arch = new Option<string?>("--arch") { Description = "One architecture (sm_80, sm_86, sm_89, sm_90, sm_90a); by default each variant's declared targets." };
        var only = new Option<string?>("--only") { Description = "Only variants whose name contains this text (e.g. Wgmma)." };
        arch.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } text && Arch.Parse(text) is null)
            {
                r.AddError($"--arch '{text}' is not a GPU architecture: give one such as sm_80, sm_86, sm_89, sm_90 or sm_90a.");
            }
        });
        only.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } text && !Attention.DeclaredVariants.All.Any(m => m.Name.Contains(text, StringComparison.Ordinal)))
            {
                r.AddError($"--only '{text}' matches no declared variant (names are case-sensitive; `kdsl list` shows them).");
            }
        });
        var command = new Command("compile", "Compile every declared variant with NVRTC and show registers and spills; unbuildable targets are skipped with the reason.") { arch, only };
        command.SetAction(parse => Run(parse.GetValue(arch) is { } a ? Arch.Parse(a)! : null, parse.GetValue(only)));
        return command;
    }

    /// <summary>One compilation to run, or a skipped one with its reason.</summary>
    private sealed record Job(KernelModuleDefinition Module, string Target, string? SkipReason);

    private static int Run(Arch? arch, string? only)
    {
        var modules = Attention.DeclaredVariants.All.Where(m => only is null || m.Name.Contains(only, StringComparison.Ordinal)).ToList();
        if (arch is not null && modules.All(m => arch.CannotBuild(m) is not null))
        {
            var lowest = modules.Min(m => m.MinimumSm);
            throw new CliUsageException(arch.Capability < lowest
                ? $"--arch {arch.Name} is below the minimum SM of every selected variant (the lowest is sm_{lowest}): give --arch sm_{lowest} or newer, or leave --arch out for each variant's declared targets."
                : $"--arch {arch.Name}: the selected variants use architecture-specific instructions and build only for {string.Join(", ", modules.SelectMany(m => m.Targets).Distinct())}: give that, or leave --arch out.");
        }
        if (!NvrtcCompiler.TryLoad(out var nvrtc, out var trace))
        {
            // The probe's first line names what was tried; the line-by-line attempts would not fit one line.
            return CliApp.Error(CliApp.Failure, $"NVRTC could not be loaded: {trace.Split('\n')[0].Trim()} Install NVRTC (docs/NVRTC.md) or name it in KERNELDSL_NVRTC_PATH.");
        }
        // Checked against the loaded NVRTC's own list before any compilation, which would fail with hundreds of lines per variant.
        if (arch is not null && nvrtc.CannotTarget(arch.Name) is { } cannot)
        {
            throw new CliUsageException($"--arch {arch.Name}: {cannot}. Install an NVRTC that supports it (or name it in KERNELDSL_NVRTC_PATH), or give another --arch.");
        }
        CliApp.WarnIfSourcesOverridden();
        var jobs = modules.SelectMany(m => (arch is null ? m.Targets.ToArray() : [arch.Name]).Select(target =>
            new Job(m, target, (arch?.CannotBuild(m) is { } why ? $"{arch.Name}: variant {why}" : null) ?? nvrtc.CannotTarget(target)))).ToList();

        var rows = new List<string[]>();
        var (spills, compiled, failures, advisories) = (0, 0, new List<string>(), new List<string>());
        void Compile(Job job)
        {
            var (module, target) = (job.Module, job.Target);
            if (job.SkipReason is { } reason)
            {
                rows.Add([module.Name, target, "skipped", "", "", reason]);
                return;
            }
            NvrtcResult result;
            try
            {
                var request = NvrtcRequest.ForModule(module, target, ptxasVerbose: true);
                result = nvrtc.Compile(request with { Options = request.Options.Add(SuppressUnusedHelpers) });
            }
            catch (NvrtcCompilationException error)
            {
                // Report every variant that fails, not only the first: its first error here, the whole message below.
                var first = error.Diagnostics.FirstOrDefault(d => d.Severity.Contains("error", StringComparison.Ordinal));
                failures.Add(error.Message);
                rows.Add([module.Name, target, "failed", "", "", first?.Message ?? error.Log.Trim().Split('\n')[0]]);
                return;
            }
            // ptxas advisories (e.g. wgmma serialized, performance warnings) are worth seeing; the per-kernel info lines are in the table.
            foreach (var line in result.Log.Split('\n').Where(l => l.Contains("warning", StringComparison.OrdinalIgnoreCase) || l.Contains("Performance", StringComparison.Ordinal)))
            {
                advisories.Add($"{module.Name} {target}: {line.Trim()}");
            }
            foreach (var kernel in result.Kernels)
            {
                compiled++;
                spills += kernel.SpillLoadBytes + kernel.SpillStoreBytes;
                rows.Add([kernel.Name, target, kernel.Registers.ToString(CultureInfo.InvariantCulture),
                    (kernel.SpillLoadBytes + kernel.SpillStoreBytes).ToString(CultureInfo.InvariantCulture),
                    kernel.StackFrameBytes.ToString(CultureInfo.InvariantCulture), result.Elapsed.TotalMilliseconds.ToString("F0", CultureInfo.InvariantCulture)]);
            }
        }
        CliProgress.Run($"NVRTC {nvrtc.Version}", jobs, Compile);

        // The last column is the module's compile time, or why a target was skipped or failed.
        CliTable.Write(["kernel", "arch", "registers", "spill bytes", "stack", "ms or reason"], rows, CliTable.Fits);
        foreach (var advisory in advisories)
        {
            AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(advisory)}[/]");
        }
        foreach (var failure in failures)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(failure)}[/]");
        }
        var skipped = jobs.Where(j => j.SkipReason is not null).GroupBy(j => j.SkipReason!).Select(g => $"{g.Count()} because {g.Key}").ToList();
        AnsiConsole.MarkupLine(Markup.Escape($"NVRTC {nvrtc.Version}: {compiled} kernels compiled, {failures.Count} variant targets failed, " +
            $"{jobs.Count(j => j.SkipReason is not null)} skipped{(skipped.Count > 0 ? $" ({string.Join("; ", skipped)})" : "")}. Warning #177 (unused helper functions) is silenced."));
        AnsiConsole.MarkupLine(spills > 0 ? $"[red]{spills} spill bytes.[/]"
            : compiled == 0 ? "[yellow]No kernel compiled, so nothing is known of spills.[/]"
            : failures.Count == 0 ? "[green]No kernel spills.[/]"
            : $"[yellow]No spills in the {compiled} kernels that compiled; the failed ones are unknown.[/]");
        return spills == 0 && failures.Count == 0 ? 0 : CliApp.Failure;
    }
}
