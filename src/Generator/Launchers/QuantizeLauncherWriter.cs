using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Cuda;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>The Quantize launcher: sizes of every output, typed arguments checked before anything is queued, kernels in order.</summary>
public static class QuantizeLauncherWriter
{
    private const string Guard = ModuleWriter.Launching + ".LaunchGuard";
    private const string Buffer = "global::KernelDsl.DeviceBuffer";

    private const string InputParameters = "long strideB, long strideH, long strideS, int batch, int heads, int tokens";

    public static string Write(QuantizePlan plan)
    {
        var spec = plan.Spec;
        var entries = plan.EntryPoints
            .OrderBy(k => k == QuantizePlan.Quantize ? 0 : 1)
            .Select(k => new EntryPointInfo(k.ConstantName, plan.Symbol(k), plan.Threads, 0))
            .ToList();
        var constants = new List<(string, int, string)>
        {
            ("HeadDim", spec.HeadDim, "Channels per token (the head dimension)."),
            ("BlockRows", spec.BlockRows, plan.PerChannel
                ? "Tokens per block of the absmax and quantize kernels."
                : "Tokens that share one scale (one block each)."),
        };
        if (spec.Transposed)
        {
            constants.Add(("TransposePad", spec.TransposePad, "The transposed output's token count is padded to a multiple of this, with zeros."));
        }
        if (spec.SubtractChannelMean)
        {
            constants.Add(("MeanSlices", plan.Slices, "The channel mean adds tokens s ≡ j (mod MeanSlices) in token order for each slice j, then the slices in order: the CPU reference repeats this order."));
        }
        return CSharpFile.Write(spec.Type, w =>
        {
            ModuleWriter.Write(w, spec, entries, constants);
            w.Line();
            WriteSizes(w, plan);
            w.Line();
            WriteLaunch(w, plan);
            w.Line();
            WriteCountNonFinite(w, plan);
        });
    }

    private static string InputType(QuantizeSpec spec) => $"{Buffer}<{spec.Input.CSharpName()}>";

    private static void WriteSizes(CodeWriter w, QuantizePlan plan)
    {
        var spec = plan.Spec;
        if (spec.Transposed)
        {
            w.Line($"/// <summary>Tokens of the transposed output: <paramref name=\"tokens\"/> rounded up to <see cref=\"TransposePad\"/>.</summary>");
            w.Line($"public static int PaddedTokens(int tokens) => (int)(((long)tokens + TransposePad - 1) / TransposePad * TransposePad);");
            w.Line();
            w.Line($"/// <summary>Position p of the 16-token group at 16·g holds token 16·g + StoredTokenOrder[p] ({spec.TransposedOrder} order).</summary>");
            w.Line($"public static global::System.ReadOnlySpan<byte> StoredTokenOrder => [{string.Join(", ", plan.StoredOrder)}];");
            w.Line();
            w.Line($"/// <summary>The token stored at <paramref name=\"position\"/> of a transposed channel row.</summary>");
            w.Line($"public static int TokenAtPosition(int position) => (position & ~15) + StoredTokenOrder[position & 15];");
            w.Line();
            w.Line($"/// <summary>Elements of <c>output</c>: [batch][heads][HeadDim][PaddedTokens(tokens)].</summary>");
            w.Line($"public static long OutputLength(int batch, int heads, int tokens) => (long)batch * heads * HeadDim * PaddedTokens(tokens);");
        }
        else
        {
            w.Line($"/// <summary>Elements of <c>output</c>: [batch][heads][tokens][HeadDim].</summary>");
            w.Line($"public static long OutputLength(int batch, int heads, int tokens) => (long)batch * heads * tokens * HeadDim;");
        }
        w.Line();
        if (plan.PerChannel)
        {
            w.Line($"/// <summary>Elements of <c>scales</c>: one per (batch, head, channel), [batch·heads][HeadDim].</summary>");
            w.Line($"public static long ScaleCount(int batch, int heads, int tokens) => (long)batch * heads * HeadDim;");
        }
        else
        {
            w.Line($"/// <summary>Elements of <c>scales</c>: one per (batch, head, tile of BlockRows tokens), [batch·heads][ceil(tokens / BlockRows)].</summary>");
            w.Line($"public static long ScaleCount(int batch, int heads, int tokens) => (long)batch * heads * TilesPerHead(tokens);");
            w.Line();
            w.Line($"/// <summary>Scales per (batch, head): ceil(tokens / BlockRows).</summary>");
            w.Line($"public static long TilesPerHead(int tokens) => ((long)tokens + BlockRows - 1) / BlockRows;");
        }
        if (spec.SubtractChannelMean)
        {
            w.Line();
            w.Line($"/// <summary>Elements of <c>channelMean</c>: [batch·heads][HeadDim] float32.</summary>");
            w.Line($"public static long ChannelMeanLength(int batch, int heads) => (long)batch * heads * HeadDim;");
        }
    }

    private static void WriteLaunch(CodeWriter w, QuantizePlan plan)
    {
        var spec = plan.Spec;
        var input = InputType(spec);
        var mean = spec.SubtractChannelMean ? $", {Buffer}<float> channelMean" : "";
        var meanArg = spec.SubtractChannelMean ? ", channelMean" : "";
        var e4m3 = spec.Output == Element.E4M3;
        // e4m3 codes are bit patterns .NET has no type for: bytes, as the attention kernels' V buffer takes them.
        var tail = $"{Buffer}<{spec.Output.CSharpName()}> output, {Buffer}<float> scales{mean}, float scaleMultiplier = 1f, {Buffer}<uint>? nonFinite = null";
        var codes = e4m3 ? "e4m3" : "int8";
        var tailArgs = $"output, scales{meanArg}, scaleMultiplier, nonFinite";
        var element = spec.Input == Element.BF16
            ? "bf16 bit patterns (the upper 16 bits of a float32; .NET has no bfloat16 type, so the buffer is typed <c>ushort</c>)"
            : "f16";

        w.Line($"/// <summary>Dense [batch][heads][tokens][HeadDim] input (BHSD). See the strided overload.</summary>");
        w.Line($"public static void Launch(global::KernelDsl.CudaStream stream, {input} x, int batch, int heads, int tokens, {tail})");
        w.Line($"    => Launch(stream, x, (long)heads * tokens * HeadDim, (long)tokens * HeadDim, HeadDim, batch, heads, tokens, {tailArgs});");
        w.Line();
        w.Line($"/// <summary>");
        w.Line($"/// Quantizes x, {element} [batch, heads, tokens, HeadDim] at element strides (strideB, strideH, strideS) with channels");
        w.Line($"/// contiguous (BHSD and BSHD are both just strides), into {codes} <paramref name=\"output\"/> ({(spec.Transposed ? $"[batch][heads][HeadDim][PaddedTokens(tokens)], tokens in {spec.TransposedOrder} order, padding zero" : "[batch][heads][tokens][HeadDim]")})");
        w.Line($"/// and float <paramref name=\"scales\"/> (<see cref=\"ScaleCount\"/>): v = {(spec.SubtractChannelMean ? "(x − mean[channel])" : "x")} · scaleMultiplier, scale = absmax(v) / {(e4m3 ? 448 : 127)}");
        var rounding = e4m3
            ? "q = the e4m3 code of the float32 product v · (1 / scale), rounded to nearest even and saturated to ±448 (sm_89 and later; NVRTC 12.1 for sm_89, 11.8 for sm_90)."
            : "q = round-half-even(v · (1 / scale)) clamped to ±127.";
        w.Line($"/// over {(plan.PerChannel ? "each channel of each (batch, head)" : "each tile of BlockRows tokens of each (batch, head)")} (1 where absmax is 0), {rounding}");
        if (spec.SubtractChannelMean)
        {
            w.Line($"/// <paramref name=\"channelMean\"/> receives the float32 mean of each (batch, head, channel) over all tokens, which attention adds back through the LSE.");
        }
        var poison = spec.SubtractChannelMean ? "; either also poisons its channel's mean." : ".";
        if (e4m3)
        {
            w.Line($"/// NaN and Inf: a NaN never raises absmax and becomes e4m3's NaN code (0x7F); an Inf makes its channel's scale Inf, its own code NaN");
            w.Line($"/// and every other value of the channel 0. When <paramref name=\"nonFinite\"/> is given the number of NaN and Inf elements of x is added");
        }
        else
        {
            w.Line($"/// NaN and Inf: a NaN never raises absmax and quantizes to 0; an Inf makes its {(plan.PerChannel ? "channel's" : "tile's")} scale Inf and every value there 0{poison}");
            w.Line($"/// The codes cannot show either, so when <paramref name=\"nonFinite\"/> is given the number of NaN and Inf elements of x is added");
        }
        w.Line($"/// to its element 0 on the stream (atomically: zero it first; many launches may share one counter).");
        w.Line($"/// Strides must be multiples of 8 and x 16-byte aligned (each thread reads 8 channels as one 16-byte load); output must be {(spec.Transposed ? 16 : 8)}-byte aligned.");
        w.Line($"/// </summary>");
        w.Block($"public static void Launch(global::KernelDsl.CudaStream stream, {input} x, {InputParameters}, {tail})", () =>
        {
            WriteLaunchChecks(w, plan, codes);
            if (spec.SubtractChannelMean)
            {
                w.Line($"// The mean first: every later kernel subtracts it.");
                WriteKernelLaunch(w, plan, QuantizePlan.ChannelMean, "batchHeads", "mean");
            }
            if (plan.PerChannel)
            {
                w.Line($"var count = (int)(batchHeads * HeadDim);");
                WriteKernelLaunch(w, plan, QuantizePlan.ClearScales, "(count + ThreadsPerBlock - 1) / ThreadsPerBlock", "clear");
                WriteKernelLaunch(w, plan, QuantizePlan.ChannelAbsmax, "batchHeads * ((tokens + BlockRows - 1L) / BlockRows)", "absmax");
                WriteKernelLaunch(w, plan, QuantizePlan.ChannelScale, "(count + ThreadsPerBlock - 1) / ThreadsPerBlock", "scale");
            }
            WriteKernelLaunch(w, plan, QuantizePlan.Quantize, "blocks", "quantize");
        });
        if (spec.SubtractChannelMean || plan.PerChannel)
        {
            w.Line();
            WriteLaunchCodes(w, plan, input, tail, codes);
        }
    }

    /// <summary>
    /// The quantize kernel alone, with the statistics it reads given (a KvStatistics pass computed them from one read of K
    /// and V together): the mean of a smoothing variant, the per-channel scales of a PerChannel one.
    /// </summary>
    private static void WriteLaunchCodes(CodeWriter w, QuantizePlan plan, string input, string tail, string codes)
    {
        var spec = plan.Spec;
        var given = spec.SubtractChannelMean
            ? "<paramref name=\"channelMean\"/> ([batch·heads][HeadDim], read, not written)"
            : "<paramref name=\"scales\"/> (one per channel, read, not written: absmax / " + (spec.Output == Element.E4M3 ? 448 : 127) + " of x · scaleMultiplier, 1 where that is 0)";
        w.Line($"/// <summary>");
        w.Line($"/// The codes of the strided <c>Launch</c> alone, one kernel, from statistics computed beforehand:");
        w.Line($"/// {given}, as a KvStatistics pass writes them.");
        w.Line($"/// The arguments and checks are Launch's; <paramref name=\"nonFinite\"/> counts as there.");
        w.Line($"/// </summary>");
        w.Block($"public static void LaunchCodes(global::KernelDsl.CudaStream stream, {input} x, {InputParameters}, {tail})", () =>
        {
            WriteLaunchChecks(w, plan, codes);
            WriteKernelLaunch(w, plan, QuantizePlan.Quantize, "blocks", "quantize");
        });
    }

    /// <summary>
    /// The launch of <paramref name="kernel"/> on <paramref name="grid"/> (Dim3.Of's arguments), its arguments in the kernel's
    /// order from the plan's one list; in Launch and LaunchCodes the NaN/Inf counter may be null (a null pointer then).
    /// </summary>
    private static void WriteKernelLaunch(CodeWriter w, QuantizePlan plan, QuantizeKernel kernel, string grid, string local)
    {
        var counterOptional = kernel != QuantizePlan.CountNonFinite;
        LauncherSections.WriteLaunch(w, plan.ParametersOf(kernel), host => counterOptional && host == "nonFinite", kernel.ConstantName, grid, local);
    }

    /// <summary>Launch's and LaunchCodes's checks of every argument; leaves batchHeads and blocks (the quantize kernel's grid) defined.</summary>
    private static void WriteLaunchChecks(CodeWriter w, QuantizePlan plan, string codes)
    {
        var spec = plan.Spec;
        WriteInputChecks(w);
        w.Line($"{Guard}.Buffer(output, nameof(output));");
        w.Line($"{Guard}.Buffer(scales, nameof(scales));");
        if (spec.SubtractChannelMean)
        {
            w.Line($"{Guard}.Buffer(channelMean, nameof(channelMean));");
        }
        WriteCounterChecks(w, "if (nonFinite is not null) ");
        w.Line($"{Guard}.Aligned(output, {(spec.Transposed ? 16 : 8)}, nameof(output));");
        var outShape = spec.Transposed ? "[{batch}][{heads}][{HeadDim}][{PaddedTokens(tokens)}]" : "[{batch}][{heads}][{tokens}][{HeadDim}]";
        w.Line($"{Guard}.Holds(output, OutputLength(batch, heads, tokens), nameof(output), $\"{codes} {outShape}\");");
        w.Line($"{Guard}.Holds(scales, ScaleCount(batch, heads, tokens), nameof(scales), {(plan.PerChannel ? "\"one scale per (batch, head, channel)\"" : "$\"one scale per (batch, head, tile of {BlockRows} tokens)\"")});");
        if (spec.SubtractChannelMean)
        {
            w.Line($"{Guard}.Holds(channelMean, ChannelMeanLength(batch, heads), nameof(channelMean), \"one mean per (batch, head, channel)\");");
        }
        var extent = spec.Transposed ? "PaddedTokens(tokens)" : "tokens";
        if (spec.Transposed)
        {
            w.Line($"{Guard}.Fits((long)tokens + TransposePad, nameof(tokens));");
        }
        w.Line($"var blocks = batchHeads * (({extent} + BlockRows - 1L) / BlockRows);");
        w.Line($"{Guard}.Fits(blocks, \"batch · heads · tiles (the grid)\");");
    }

    /// <summary>The checks of stream, x and its shape, shared by Launch and CountNonFinite; leaves batchHeads defined.</summary>
    private static void WriteInputChecks(CodeWriter w)
    {
        w.Line($"{Guard}.Stream(stream, nameof(stream));");
        w.Line($"{Guard}.Buffer(x, nameof(x));");
        w.Line($"{Guard}.Positive(batch, nameof(batch));");
        w.Line($"{Guard}.Positive(heads, nameof(heads));");
        w.Line($"{Guard}.Positive(tokens, nameof(tokens));");
        LauncherSections.WriteStridedTensorChecks(w, "x", strideStem: "stride");
        w.Line($"var batchHeads = (long)batch * heads;");
        w.Line($"{Guard}.Fits(batchHeads * HeadDim, \"batch · heads · HeadDim\");");
    }

    private static void WriteCounterChecks(CodeWriter w, string condition)
    {
        w.Line($"{condition}{Guard}.Buffer(nonFinite, nameof(nonFinite));");
        w.Line($"{condition}{Guard}.Holds(nonFinite, 1, nameof(nonFinite), \"one NaN/Inf counter\");");
    }

    private static void WriteCountNonFinite(CodeWriter w, QuantizePlan plan)
    {
        w.Line($"/// <summary>");
        w.Line($"/// Adds the number of NaN and Inf elements of x (the elements <c>Launch</c> would quantize, under the same checks) to");
        w.Line($"/// <paramref name=\"nonFinite\"/>[0] on the stream, without quantizing: for a tensor that is used as it is, such as V when P·V runs in 16-bit floats.");
        w.Line($"/// </summary>");
        w.Block($"public static void CountNonFinite(global::KernelDsl.CudaStream stream, {InputType(plan.Spec)} x, {InputParameters}, {Buffer}<uint> nonFinite)", () =>
        {
            WriteInputChecks(w);
            WriteCounterChecks(w, "");
            w.Line($"var blocks = batchHeads * ((tokens + BlockRows - 1L) / BlockRows);");
            w.Line($"{Guard}.Fits(blocks, \"batch · heads · tiles (the grid)\");");
            WriteKernelLaunch(w, plan, QuantizePlan.CountNonFinite, "blocks", "counting");
        });
    }
}
