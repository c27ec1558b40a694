using System.Collections.Generic;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>
/// What a KvSinglePass variant derives from its declaration: the statistics plan and the codes plan it fuses (their
/// thread mappings, summation order and tiles, unchanged), its occupancy, the synchronisation words and the signature.
/// The CUDA writer and the launcher writer both read this, so no number is computed twice.
/// </summary>
public sealed record KvSinglePassPlan(KvSinglePassSpec Spec)
{
    public KvStatisticsPlan Statistics => new(Spec.Statistics);
    public KvCodesPlan Codes => new(Spec.Codes);

    public int HeadDim => Spec.HeadDim;
    public int Threads => Spec.Threads;
    public int SliceTokens => Spec.SliceTokens;

    /// <summary>
    /// Blocks an SM should hold (__launch_bounds__): the codes blocks may wait for their head, and the statistics blocks
    /// keep DRAM busy meanwhile only if others are resident beside them. Three spilled 168–204 bytes (80 registers,
    /// NVRTC 11.8): the codes role holds a tile's K and V loads.
    /// </summary>
    public const int MinBlocksPerSm = 2;

    /// <summary>
    /// Tokens whose K and V loads a statistics thread issues before adding. At D = 128 the statistics pass's own 8 (64 KB in
    /// flight a block); at D = 64, 2 (a lane's tokens are twice as many and its loads half as wide): with 4 or 8 beside
    /// the codes role, ptxas spilled 4–24 bytes under the 128 registers of two blocks an SM (NVRTC 11.8, sm_80 and sm_90).
    /// </summary>
    public int LoadsInFlight => Spec.HeadDim >= 128 ? KvStatisticsPlan.LoadsInFlight : 2;

    /// <summary>Why a codes block's K and V come from L2, for the CUDA's comments.</summary>
    public const string LeadWhy = "where its head's statistics blocks, one device-full of statistics blocks earlier, are still there";

    /// <summary>Static shared memory: the statistics' lane arrays, the mean and the codes' arrays, plus a few words.</summary>
    public int StaticSharedBytes => Statistics.SharedMemoryBytes + 4 * Spec.HeadDim + Codes.SharedMemoryBytes + 16;

    /// <summary>Slices per group of K's mean (<see cref="KvStatisticsPlan.SliceGroup"/>): the last slice of a group combines it.</summary>
    public static int SliceGroup => KvStatisticsPlan.SliceGroup;

    public string Symbol => Spec.KernelPrefix + "_single_pass";

    /// <summary>The launcher's parameters and the kernel's, once.</summary>
    public KernelSignature Signature
    {
        get
        {
            var input = Spec.Input == Element.BF16 ? "bf16" : "f16";
            var codes = Codes;
            var d = Spec.HeadDim;
            var largest = Statistics.LargestVCode;
            var host = new List<HostParameter>();
            var kernel = new List<KernelParameter>();
            void Buffer(string name, string element, bool optional, string role, string cudaName, string cudaType)
            {
                host.Add(new HostParameter(name, HostKind.Buffer, element, optional, role));
                kernel.Add(new KernelParameter(cudaName, cudaType, Passing.Pointer, name));
            }
            void Scalar(string name, string type, string role, string cudaName, string cudaType)
            {
                host.Add(new HostParameter(name, HostKind.Scalar, type, false, role));
                kernel.Add(new KernelParameter(cudaName, cudaType, Passing.Value, name));
            }
            host.Add(new HostParameter("stream", HostKind.Stream, "", false, "the stream the kernel runs on"));
            Buffer("k", codes.InputElement, false, $"K, {input} [batch, heads, tokens, {d}] at strides (kStrideB, kStrideH, kStrideS), channels contiguous", "k", "const u16* __restrict__");
            Scalar("kStrideB", "long", "K's batch stride, in elements", "k_stride_b", "long long");
            Scalar("kStrideH", "long", "K's head stride, in elements", "k_stride_h", "long long");
            Scalar("kStrideS", "long", "K's token stride, in elements", "k_stride_s", "long long");
            Buffer("v", codes.InputElement, false, $"V, {input} [batch, heads, tokens, {d}] at strides (vStrideB, vStrideH, vStrideS), channels contiguous", "v", "const u16* __restrict__");
            Scalar("vStrideB", "long", "V's batch stride, in elements", "v_stride_b", "long long");
            Scalar("vStrideH", "long", "V's head stride, in elements", "v_stride_h", "long long");
            Scalar("vStrideS", "long", "V's token stride, in elements", "v_stride_s", "long long");
            host.Add(new HostParameter("batch", HostKind.Scalar, "int", false, "batch size"));
            Scalar("heads", "int", "heads of K and V", "heads", "int");
            Scalar("tokens", "int", "tokens of K and V", "S", "int");
            Buffer("kMean", "float", false, $"K's channel mean over all tokens, [batch·heads][{d}] float32 (written)", "k_mean", "float* __restrict__");
            Buffer("vScale", "float", false, $"V's scale per channel, absmax over all tokens / {largest} (1 where that is 0), [batch·heads][{d}] (written)", "v_scale", "float* __restrict__");
            Buffer("kCodes", "sbyte", false, $"K's codes, int8 [batch][heads][tokens][{d}] (written)", "k_codes", "s8* __restrict__");
            Buffer("kScale", "float", false, $"K's scales, one per {codes.Tile} tokens, [batch·heads][ceil(tokens / {codes.Tile})] (written)", "k_scale", "float* __restrict__");
            var layout = Spec.VTransposed ? $"[batch][heads][{d}][PaddedTokens(tokens)], tokens in {Spec.TransposedOrder} order, padding zero" : $"[batch][heads][tokens][{d}]";
            Buffer("vCodes", codes.VCodeElement, false, $"V's codes, {(Spec.VOutput == Element.E4M3 ? "e4m3" : "int8")} {layout} (written)", "v_codes", $"{(Spec.VOutput == Element.E4M3 ? "u8" : "s8")}* __restrict__");
            if (Spec.VTransposed)
            {
                kernel.Add(new KernelParameter("s_pad", "int", Passing.Value, "paddedTokens"));
            }
            kernel.Add(new KernelParameter("lead", "int", Passing.Value, "lead"));
            Buffer("workspace", "float", false, "the slices' and groups' partial sums and maxima (WorkspaceLength)", "partials", "float* __restrict__");
            Buffer("sync", "uint", false, "the blocks' ticket, arrival counts and ready flags (SyncLength; zeroed on the stream before the kernel)", "sync", "unsigned int* __restrict__");
            Buffer("kNonFinite", "uint", true, "where K's NaN and Inf count is added (element 0), or null", "k_nonfinite", "unsigned int*");
            Buffer("vNonFinite", "uint", true, "where V's NaN and Inf count is added (element 0), or null", "v_nonfinite", "unsigned int*");
            return new KernelSignature(host.ToEquatableArray(), kernel.ToEquatableArray());
        }
    }
}
