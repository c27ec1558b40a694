using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>The split-KV merge's launcher: its checks, then the kernel's arguments from the one signature (<see cref="LseMergePlan"/>).</summary>
public static class LseMergeLauncherWriter
{
    private const string Guard = ModuleWriter.Launching + ".LaunchGuard";

    public static string Write(LseMergePlan plan) => CSharpFile.Write(plan.Spec.Type, w =>
    {
        var spec = plan.Spec;
        ModuleWriter.Write(w, spec, [new EntryPointInfo("KernelName", spec.KernelPrefix, spec.Threads, 0)],
            [("HeadDim", spec.HeadDim, "Channels per head.")]);
        w.Line();
        w.Line($"/// <summary>");
        w.Line($"/// Merges <paramref name=\"partials\"/> partial results over disjoint key ranges into O and LSE: lse = log Σ exp(lse_i),");
        w.Line($"/// O = Σ exp(lse_i − lse)·O_i. A row no partial saw gets O = 0 and LSE = −∞.");
        w.Line($"/// </summary>");
        LauncherSections.WriteParameterDocs(w, plan.Signature.Host);
        w.Block($"public static void Launch({plan.Signature.CSharpParameters})", () =>
        {
            LauncherSections.WriteReferenceChecks(w, plan.Signature);
            w.Line($"{Guard}.Positive(partials, nameof(partials));");
            w.Line($"{Guard}.Positive(rows, nameof(rows));");
            w.Line($"{Guard}.Holds(partialO, partials * rows * HeadDim, nameof(partialO), \"[partials][rows][HeadDim]\");");
            w.Line($"{Guard}.Holds(partialLse, partials * rows, nameof(partialLse), \"[partials][rows]\");");
            w.Line($"{Guard}.Holds(o, rows * HeadDim, nameof(o), \"[rows][HeadDim]\");");
            w.Line($"{Guard}.Holds(lse, rows, nameof(lse), \"[rows]\");");
            w.Line($"{Guard}.Aligned(partialO, 16, nameof(partialO));");
            w.Line($"{Guard}.Aligned(o, 16, nameof(o));");
            LauncherSections.WriteLaunch(w, plan.Signature, "KernelName", $"(rows + {spec.Threads / 32 - 1}) / {spec.Threads / 32}");
        });
    });
}
