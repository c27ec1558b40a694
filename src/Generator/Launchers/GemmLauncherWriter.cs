using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>The Int8Gemm launcher: typed arguments, every rule checked before the launch, grid from the tiles.</summary>
public static class GemmLauncherWriter
{
    private const string Guard = ModuleWriter.Launching + ".LaunchGuard";

    public static string Write(GemmPlan plan)
    {
        var spec = plan.Spec;
        var entries = new System.Collections.Generic.List<EntryPointInfo> { new("KernelName", spec.KernelPrefix, plan.Threads, plan.SharedMemoryBytes) };
        if (plan.PretransposesB)
        {
            entries.Add(new EntryPointInfo("TransposeKernelName", spec.KernelPrefix + "_transpose_b", 256, 0));
        }
        return CSharpFile.Write(spec.Type, w =>
        {
            ModuleWriter.Write(w, spec, entries,
            [
                ("BlockM", spec.BlockM, "Rows of C per block."),
                ("BlockN", spec.BlockN, "Columns of C per block."),
                ("BlockK", spec.BlockK, "k per pipeline stage."),
                ("Stages", spec.Stages, "Shared-memory pipeline stages."),
            ]);
            w.Line();
            WriteLaunch(w, plan);
        });
    }

    private static void WriteLaunch(CodeWriter w, GemmPlan plan)
    {
        var spec = plan.Spec;
        var output = spec.Output == GemmOutput.S32
            ? "global::KernelDsl.DeviceBuffer<int> c"
            : "global::KernelDsl.DeviceBuffer<global::System.Half> c, global::KernelDsl.DeviceBuffer<float> rowScale, global::KernelDsl.DeviceBuffer<float> colScale";
        var outputArgs = spec.Output == GemmOutput.S32 ? "c" : "c, rowScale, colScale";
        var scratch = plan.PretransposesB ? "global::KernelDsl.DeviceBuffer<sbyte> bTransposed, " : "";
        var scratchArg = plan.PretransposesB ? "bTransposed, " : "";
        var bShape = spec.Layout == GemmLayout.TN ? "[n][ldb] (k contiguous)" : "[k][ldb] (n contiguous)";
        var denseLdb = spec.Layout == GemmLayout.TN ? "k" : "n";

        if (plan.PretransposesB)
        {
            w.Line($"/// <summary>Elements the <c>bTransposed</c> scratch needs: n rows of k rounded up to 16.</summary>");
            w.Line($"public static long TransposedBLength(int n, int k) => (long)n * ((k + 15) / 16 * 16);");
            w.Line();
        }

        w.Line($"/// <summary>Dense operands: lda = k, ldb = {denseLdb}, ldc = n.</summary>");
        w.Line($"public static void Launch(global::KernelDsl.CudaStream stream, global::KernelDsl.DeviceBuffer<sbyte> a, global::KernelDsl.DeviceBuffer<sbyte> b, {scratch}{output}, int m, int n, int k)");
        w.Line($"    => Launch(stream, a, b, {scratchArg}{outputArgs}, m, n, k, k, {denseLdb}, n);");
        w.Line();
        w.Line($"/// <summary>");
        w.Line($"/// C[m×n] = A[m×k]·B: A is [m][lda] (k contiguous), B is {bShape}, C is [m][ldc]. Leading dimensions of the");
        w.Line($"/// int8 operands must be multiples of 16 and their buffers 16-byte aligned (cp.async moves 16-byte chunks).");
        w.Line($"/// </summary>");
        w.Block($"public static void Launch(global::KernelDsl.CudaStream stream, global::KernelDsl.DeviceBuffer<sbyte> a, global::KernelDsl.DeviceBuffer<sbyte> b, {scratch}{output}, int m, int n, int k, int lda, int ldb, int ldc)", () =>
        {
            w.Line($"{Guard}.Stream(stream, nameof(stream));");
            w.Line($"{Guard}.Buffer(a, nameof(a));");
            w.Line($"{Guard}.Buffer(b, nameof(b));");
            if (plan.PretransposesB)
            {
                w.Line($"{Guard}.Buffer(bTransposed, nameof(bTransposed));");
            }
            w.Line($"{Guard}.Buffer(c, nameof(c));");
            if (spec.Output == GemmOutput.F16Scaled)
            {
                w.Line($"{Guard}.Buffer(rowScale, nameof(rowScale));");
                w.Line($"{Guard}.Buffer(colScale, nameof(colScale));");
            }
            w.Line($"{Guard}.Positive(m, nameof(m));");
            w.Line($"{Guard}.Positive(n, nameof(n));");
            w.Line($"{Guard}.Positive(k, nameof(k));");
            w.Line($"{Guard}.AtMost(m, 65535L * BlockM, nameof(m), \"row tiles are the grid's y extent (at most 65535)\");");
            w.Line($"{Guard}.AtLeast(lda, k, nameof(lda), \"k\");");
            w.Line($"{Guard}.AtLeast(ldb, {denseLdb}, nameof(ldb), \"{denseLdb}\");");
            w.Line($"{Guard}.AtLeast(ldc, n, nameof(ldc), \"n\");");
            w.Line($"{Guard}.MultipleOf(lda, 16, nameof(lda), \"rows of A are copied in 16-byte chunks\");");
            if (!plan.PretransposesB)
            {
                w.Line($"{Guard}.MultipleOf(ldb, 16, nameof(ldb), \"rows of B are copied in 16-byte chunks\");");
                w.Line($"{Guard}.Aligned(b, 16, nameof(b));");
            }
            w.Line($"{Guard}.Aligned(a, 16, nameof(a));");
            w.Line($"{Guard}.Holds(a, (long)(m - 1) * lda + k, nameof(a), $\"A [{{m}}][{{lda}}] with k = {{k}}\");");
            var bRows = spec.Layout == GemmLayout.TN ? "n" : "k";
            w.Line($"{Guard}.Holds(b, (long)({bRows} - 1) * ldb + {denseLdb}, nameof(b), $\"B [{{{bRows}}}][{{ldb}}]\");");
            w.Line($"{Guard}.Holds(c, (long)(m - 1) * ldc + n, nameof(c), $\"C [{{m}}][{{ldc}}]\");");
            if (spec.Output == GemmOutput.F16Scaled)
            {
                w.Line($"{Guard}.Holds(rowScale, m, nameof(rowScale), \"one scale per row of C\");");
                w.Line($"{Guard}.Holds(colScale, n, nameof(colScale), \"one scale per column of C\");");
            }
            if (plan.PretransposesB)
            {
                w.Line($"var ldbt = (k + 15) / 16 * 16;");
                w.Line($"{Guard}.Aligned(bTransposed, 16, nameof(bTransposed));");
                w.Line($"{Guard}.Holds(bTransposed, TransposedBLength(n, k), nameof(bTransposed), $\"Bt [{{n}}][{{ldbt}}]\");");
                w.Line();
                w.Line($"// Recipe C: write B n-major first, on the same stream.");
                LauncherSections.WriteLaunch(w, GemmPlan.TransposeParameters, _ => false, "TransposeKernelName", "(n + 63) / 64, (ldbt + 63) / 64", "transpose");
            }
            w.Line();
            LauncherSections.WriteLaunch(w, plan.Parameters, _ => false, "KernelName", "(n + BlockN - 1) / BlockN, (m + BlockM - 1) / BlockM", "arguments");
        });
    }
}
