using System.Collections.Generic;
using System.Collections.Immutable;
using KernelDsl.Generator.Cuda;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Validation;

/// <summary>
/// The Quantize family's rules: its can_implement, checked at build time. The kernels read 8 channels (16 bytes
/// of f16/bf16) per load and stage nothing through declared shared-memory layouts, so layouts and atoms are errors
/// here rather than silently ignored.
/// </summary>
public static class QuantizeValidator
{
    /// <summary>The head dims the attention kernels are built for; each is a multiple of 16, so int8 rows are whole 16-byte chunks.</summary>
    public static readonly ImmutableArray<int> HeadDims = [64, 96, 128, 256];

    public const int MinThreads = 64;
    public const int MaxThreads = 1024;
    public const int MaxBlockRows = 1024;
    /// <summary>Static shared memory a kernel may declare without opting in to more.</summary>
    public const int MaxStaticSharedBytes = 48 * 1024;
    public const int MaxTransposePad = 1024;

    public static ImmutableArray<Finding> Validate(QuantizeSpec spec)
    {
        var findings = new List<Finding>();
        CheckParameters(findings, spec);
        CheckTransposition(findings, spec);
        CheckOutput(findings, spec);
        DeclarationRules.CheckNothingStaged(findings, spec, "the quantize kernels move data with plain 16-byte loads and stores and multiply nothing; remove the attribute");
        return findings.ToImmutableArray();
    }

    private static void Bad(List<Finding> findings, string name, object value, string rule) =>
        findings.Add(Finding.Of(Rules.InvalidParameter, FindingTarget.Family, "Quantize." + name, value, rule));

    private static void CheckParameters(List<Finding> findings, QuantizeSpec spec)
    {
        if (spec.Input is not (Element.F16 or Element.BF16))
        {
            Bad(findings, nameof(spec.Input), spec.Input, "the quantize kernels read f16 or bf16 (Element.F16 or Element.BF16)");
        }
        if (!HeadDims.Contains(spec.HeadDim))
        {
            var why = spec.HeadDim % 16 != 0 ? $"it is not a multiple of 16; " : "";
            Bad(findings, nameof(spec.HeadDim), spec.HeadDim, why + "use 64, 96, 128 or 256 (the attention head dims; 16-byte int8 rows, 8 channels per load)");
        }
        if (spec.BlockRows < 16 || spec.BlockRows > MaxBlockRows || spec.BlockRows % 16 != 0)
        {
            Bad(findings, nameof(spec.BlockRows), spec.BlockRows, $"use a multiple of 16 from 16 to {MaxBlockRows} (attention tiles and π groups are 16 tokens)");
        }
        if (!DeclarationRules.IsPowerOfTwo(spec.Threads) || spec.Threads < MinThreads || spec.Threads > MaxThreads)
        {
            Bad(findings, nameof(spec.Threads), spec.Threads, $"use a power of two from {MinThreads} to {MaxThreads} threads per block");
        }
        if (spec.Targets.IsEmpty)
        {
            Bad(findings, nameof(spec.Targets), "[]", "name at least one architecture");
        }
    }

    /// <summary>
    /// e4m3 codes are fp8 P·V's V: one scale per channel (the epilogue's), no mean (P·V has no place to add it back), and
    /// <c>cvt.rn.satfinite.e4m3x2.f32</c> exists from sm_89 on.
    /// </summary>
    private static void CheckOutput(List<Finding> findings, QuantizeSpec spec)
    {
        if (spec.Output is not (Element.S8 or Element.E4M3))
        {
            Bad(findings, nameof(spec.Output), spec.Output, "the quantize kernels write int8 or e4m3 codes (Element.S8 or Element.E4M3)");
            return;
        }
        if (spec.Output != Element.E4M3)
        {
            return;
        }
        if (spec.Granularity != QuantGranularity.PerChannel)
        {
            Bad(findings, nameof(spec.Output), spec.Output,
                $"e4m3 codes are V for fp8 P·V, whose scale the epilogue applies per channel; Granularity = {spec.Granularity} is not supported with it: use QuantGranularity.PerChannel, or Output = Element.S8");
        }
        if (spec.SubtractChannelMean)
        {
            Bad(findings, nameof(spec.Output), spec.Output,
                "e4m3 codes are V for fp8 P·V, and P·V has no place to add a channel mean back: use SubtractChannelMean = false, or Output = Element.S8");
        }
        DeclarationRules.CheckAtom(findings, spec, FindingTarget.Family, "Quantize.Output = E4M3", "cvt.rn.satfinite.e4m3x2.f32; on sm_89 PTX ISA 8.1, NVRTC 12.1", QuantizeSpec.E4m3MinSm);
    }

    private static void CheckTransposition(List<Finding> findings, QuantizeSpec spec)
    {
        if (!spec.Transposed)
        {
            return;
        }
        if (spec.TransposePad < 16 || spec.TransposePad > MaxTransposePad || spec.TransposePad % 16 != 0)
        {
            var why = spec.TransposedOrder == TokenOrder.Pi
                ? "π order permutes whole 16-token groups and rows are stored in 16-byte chunks"
                : "rows are stored in 16-byte chunks";
            Bad(findings, nameof(spec.TransposePad), spec.TransposePad, $"use a multiple of 16 from 16 to {MaxTransposePad}: {why}");
        }
        if (QuantizePlan.StagingBytes(spec.HeadDim, spec.BlockRows) > MaxStaticSharedBytes)
        {
            var most = (MaxStaticSharedBytes - 4 * spec.HeadDim) / spec.HeadDim - 16;
            Bad(findings, nameof(spec.BlockRows), spec.BlockRows,
                $"a transposed quantize stages HeadDim × (BlockRows + 16) bytes of codes in shared memory ({QuantizePlan.StagingBytes(spec.HeadDim, spec.BlockRows)} bytes here), at most {MaxStaticSharedBytes} statically: use BlockRows ≤ {most / 16 * 16}");
        }
        if (spec.Granularity == QuantGranularity.PerRowBlock)
        {
            Bad(findings, nameof(spec.Granularity), spec.Granularity,
                "a transposed output is V for P·V, whose tokens are the MMA's k dimension and whose scale the epilogue applies per channel: use QuantGranularity.PerChannel, or Transposed = false");
        }
    }
}
