using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>Int8Gemm spec → CUDA module text. Sections in order: prelude, PTX helpers, layouts, loader, kernels.</summary>
public static class GemmEmitter
{
    public static string Emit(GemmPlan plan)
    {
        var spec = plan.Spec;
        var a = plan.ComposeA();
        var b = plan.ComposeB(a);
        var kernel = new GemmKernelWriter(plan, b);
        var w = new CodeWriter();

        var layoutA = spec.LayoutOf(Operand.A)!;
        var layoutB = spec.LayoutOf(Operand.B)!;
        var aAtom = spec.CopyAtomOf(Operand.A, CopyDirection.SharedToRegisters)!.Value;
        var bAtom = spec.CopyAtomOf(Operand.B, CopyDirection.SharedToRegisters)!.Value;
        var g2sA = spec.CopyAtomOf(Operand.A, CopyDirection.GlobalToShared) ?? CopyAtomKind.CpAsync16;
        var g2sB = spec.CopyAtomOf(Operand.B, CopyDirection.GlobalToShared) ?? CopyAtomKind.CpAsync16;
        var bShape = spec.Layout == GemmLayout.TN ? "B[N×K]" : "B[K×N]";
        CudaPrelude.Write(w, spec,
            $"C[M×N] = A[M×K] · {bShape} ({spec.Layout}), {plan.Mma.AElement.CudaName()}·{plan.Mma.BElement.CudaName()} → s32 on {plan.Mma.Ptx}" +
                (spec.Output == GemmOutput.F16Scaled ? ", written as f16(acc · row_scale[m] · col_scale[n])." : ", written as s32."),
            $"Block {spec.BlockM}×{spec.BlockN}×{spec.BlockK}, {spec.Warps} warps as {plan.WarpsM}×{plan.WarpsN} (warp tile {plan.WarpTileM}×{plan.WarpTileN}), {spec.Stages} stage(s), {plan.SharedMemoryBytes} bytes of shared memory.",
            $"A: {g2sA} then {aAtom} ({CopyAtom.Get(aAtom).Instructions}).",
            $"B: {g2sB} then {bAtom} ({CopyAtom.Get(bAtom).Instructions})" + (plan.PretransposesB ? ", from Bt written by the transpose kernel." : "."));

        var helpers = new[] { PtxHelper.IntMath }
            .Concat(PtxHelpers.For(g2sA))
            .Concat(PtxHelpers.For(g2sB))
            .Concat(PtxHelpers.For(aAtom))
            .Concat(PtxHelpers.For(bAtom))
            .Concat(spec.Output == GemmOutput.F16Scaled ? [PtxHelper.F16Convert] : []);
        PtxHelpers.Write(w, helpers, [plan.Mma]);
        w.Line();

        w.Line($"// ---- Shared-memory layouts ----");
        LayoutWriter.Write(w, layoutA, plan.ARows, plan.ARowBytes);
        LayoutWriter.Write(w, layoutB, plan.BRows, plan.BRowBytes);
        w.Line();

        kernel.WriteLoader(w);
        w.Line();
        if (plan.PretransposesB)
        {
            kernel.WriteTransposeKernel(w);
            w.Line();
        }
        kernel.WriteKernel(w);
        return w.ToString();
    }
}
