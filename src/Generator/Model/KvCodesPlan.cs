using System.Collections.Generic;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>
/// What a KvCodes variant derives from its declaration: the thread → (token, channels) mappings of its one kernel, its
/// shared memory and its signature. The CUDA writer and the launcher writer both read this, so no number is computed twice.
/// </summary>
public sealed record KvCodesPlan(KvCodesSpec Spec)
{
    /// <summary>Channels per thread and token for K and natural V: two 16-byte loads in, one 16-byte store of codes out.</summary>
    public const int ThreadChannels = 16;

    /// <summary>Channels per 16-byte load.</summary>
    public const int ChunkChannels = 8;

    /// <summary>The 16-token group of a transposed output.</summary>
    public const int GroupTokens = 16;

    public int HeadDim => Spec.HeadDim;
    public int Threads => Spec.Threads;
    public int Warps => Spec.Threads / 32;

    /// <summary>Tokens per block: one K scale.</summary>
    public int Tile => Spec.KScaleKeys;

    /// <summary>Threads per token row of K (and natural V): each 16 channels.</summary>
    public int ThreadsPerToken => Spec.HeadDim / ThreadChannels;

    /// <summary>Token rows one pass of the block covers; threads past RowsPerPass · ThreadsPerToken load nothing.</summary>
    public int RowsPerPass => System.Math.Max(1, Spec.Threads / ThreadsPerToken);

    /// <summary>Passes over the tile, each thread's loads all issued before any is used.</summary>
    public int Passes => (Tile + RowsPerPass - 1) / RowsPerPass;

    /// <summary>
    /// Transposed V: 8-channel chunks per thread, in the §6 mapping (a warp reads one chunk of 32 tokens, so its shared
    /// stores of codes hit distinct banks).
    /// </summary>
    public int TransposedChunks => (Tile * (Spec.HeadDim / ChunkChannels) + Spec.Threads - 1) / Spec.Threads;

    /// <summary>Bytes per channel row of the transposed V's shared tile: 16 more than the tile's tokens (QuantizePlan.StagingPitch).</summary>
    public int StagingPitch => Tile + 16;

    /// <summary>Static shared memory: the warps' maxima, V's inverse scales and (transposed V) the code tile.</summary>
    public static int SharedBytes(int headDim, int tile, int threads, bool transposed) => 4 * (threads / 32) + 4 * headDim + (transposed ? headDim * (tile + 16) : 0);

    public int SharedMemoryBytes => SharedBytes(Spec.HeadDim, Tile, Spec.Threads, Spec.VTransposed);

    /// <summary>Position p of a transposed row holds token 16·(p / 16) + StoredOrder[p % 16].</summary>
    public IReadOnlyList<int> StoredOrder => FragmentComposition.GroupOrder(Spec.TransposedOrder);

    public string Symbol => Spec.KernelPrefix + "_codes";

    /// <summary>The C# element of a 16-bit buffer of the declared input: .NET has no bfloat16, so bf16 bits travel as ushort.</summary>
    public string InputElement => Spec.Input.CSharpName();

    /// <summary>The C# element of V's codes: sbyte, or byte holding e4m3 bit patterns.</summary>
    public string VCodeElement => Spec.VOutput.CSharpName();

    /// <summary>The launcher's parameters and the kernel's, once.</summary>
    public KernelSignature Signature
    {
        get
        {
            var input = Spec.Input == Element.BF16 ? "bf16" : "f16";
            var d = Spec.HeadDim;
            var signature = new SignatureBuilder();
            signature.Stream("the stream the kernel runs on");
            signature.Buffer("k", InputElement, $"K, {input} [batch, heads, tokens, {d}] at strides (kStrideB, kStrideH, kStrideS), channels contiguous", "k", "const u16* __restrict__");
            signature.Scalar("kStrideB", "long", "K's batch stride, in elements", "k_stride_b", "long long");
            signature.Scalar("kStrideH", "long", "K's head stride, in elements", "k_stride_h", "long long");
            signature.Scalar("kStrideS", "long", "K's token stride, in elements", "k_stride_s", "long long");
            signature.Buffer("v", InputElement, $"V, {input} [batch, heads, tokens, {d}] at strides (vStrideB, vStrideH, vStrideS), channels contiguous", "v", "const u16* __restrict__");
            signature.Scalar("vStrideB", "long", "V's batch stride, in elements", "v_stride_b", "long long");
            signature.Scalar("vStrideH", "long", "V's head stride, in elements", "v_stride_h", "long long");
            signature.Scalar("vStrideS", "long", "V's token stride, in elements", "v_stride_s", "long long");
            signature.Host("batch", HostKind.Scalar, "int", "batch size");
            signature.Scalar("heads", "int", "heads of K and V", "heads", "int");
            signature.Scalar("tokens", "int", "tokens of K and V", "S", "int");
            signature.Buffer("kMean", "float", $"K's channel mean, [batch·heads][{d}] (read: the statistics pass's)", "k_mean", "const float* __restrict__");
            signature.Buffer("vScale", "float", $"V's scale per channel, [batch·heads][{d}] (read: the statistics pass's)", "v_scale", "const float* __restrict__");
            signature.Buffer("kCodes", "sbyte", $"K's codes, int8 [batch][heads][tokens][{d}] (written)", "k_codes", "s8* __restrict__");
            signature.Buffer("kScale", "float", $"K's scales, one per {Tile} tokens, [batch·heads][ceil(tokens / {Tile})] (written)", "k_scale", "float* __restrict__");
            var layout = Spec.VTransposed ? $"[batch][heads][{d}][PaddedTokens(tokens)], tokens in {Spec.TransposedOrder} order, padding zero" : $"[batch][heads][tokens][{d}]";
            signature.Buffer("vCodes", VCodeElement, $"V's codes, {(Spec.VOutput == Element.E4M3 ? "e4m3" : "int8")} {layout} (written)", "v_codes", $"{(Spec.VOutput == Element.E4M3 ? "u8" : "s8")}* __restrict__");
            if (Spec.VTransposed)
            {
                signature.Kernel(new KernelParameter("s_pad", "int", Passing.Value, "paddedTokens"));
            }
            return signature.Build();
        }
    }
}
