using System.Collections.Generic;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>One entry point of a Quantize module, in launch order.</summary>
/// <param name="ConstantName">The launcher's constant for its symbol.</param>
/// <param name="Suffix">Appended to the kernel prefix.</param>
public sealed record QuantizeKernel(string ConstantName, string Suffix);

/// <summary>
/// Everything a Quantize variant derives from its declaration: the thread → (token, channel chunk) mapping, the
/// summation order of the channel mean, the kernels and their launch order. Emitter and launcher both read this,
/// so no number is computed twice.
/// </summary>
public sealed record QuantizePlan(QuantizeSpec Spec)
{
    /// <summary>Channels per thread per load: 8 × 2 bytes = one 16-byte load of f16/bf16.</summary>
    public const int ChunkChannels = 8;

    /// <summary>Tokens whose loads one thread of a statistics kernel (channel mean, channel absmax) issues before it reduces any.</summary>
    public const int LoadsInFlight = 8;

    /// <summary>The 16-token group of a transposed output.</summary>
    public const int GroupTokens = 16;

    /// <summary>
    /// Bytes per channel row of the transposed kernel's shared tile: 16 more than the block's tokens. The quantize
    /// pass's byte stores (a warp: 32 tokens of one row) hit distinct banks for any pitch; the 16 extra bytes put the
    /// store pass's 16-byte reads (8 lanes per row for 128-token blocks, the declared size) on distinct banks too.
    /// </summary>
    public static int StagingPitch(int blockRows) => blockRows + 16;

    /// <summary>Static shared memory of the transposed quantize kernel: the code tile and one reciprocal per channel.</summary>
    public static int StagingBytes(int headDim, int blockRows) => headDim * StagingPitch(blockRows) + 4 * headDim;

    public static readonly QuantizeKernel ChannelMean = new("ChannelMeanKernelName", "_channel_mean");
    public static readonly QuantizeKernel ClearScales = new("ClearScalesKernelName", "_clear_scales");
    public static readonly QuantizeKernel ChannelAbsmax = new("ChannelAbsmaxKernelName", "_channel_absmax");
    public static readonly QuantizeKernel ChannelScale = new("ChannelScaleKernelName", "_channel_scale");
    public static readonly QuantizeKernel Quantize = new("KernelName", "_quantize");
    public static readonly QuantizeKernel CountNonFinite = new("CountNonFiniteKernelName", "_count_nonfinite");

    /// <summary>The CUDA type of one code: s8, or u8 holding an e4m3 bit pattern (per-channel V only, by validation).</summary>
    public string CodeType => Spec.Output == Element.E4M3 ? "u8" : "s8";

    public int Threads => Spec.Threads;
    public int HeadDim => Spec.HeadDim;
    public bool PerChannel => Spec.Granularity == QuantGranularity.PerChannel;
    public bool Transposed => Spec.Transposed;

    /// <summary>16-byte chunks in one token's row of channels.</summary>
    public int ChunksPerRow => Spec.HeadDim / ChunkChannels;

    /// <summary>
    /// Token slices of the statistics kernels: thread t reads chunk t % ChunksPerRow of tokens
    /// t / ChunksPerRow, + Slices, + 2·Slices, ... Threads past Slices·ChunksPerRow idle.
    /// The channel mean adds each slice in token order, then the slices in slice order.
    /// </summary>
    public int Slices => System.Math.Max(1, Spec.Threads / ChunksPerRow);

    /// <summary>Chunks of one PerRowBlock tile per thread.</summary>
    public int ChunksPerThread => (Spec.BlockRows * ChunksPerRow + Spec.Threads - 1) / Spec.Threads;

    /// <summary>Whether the PerRowBlock kernel keeps its tile in registers between the absmax and the quantize pass (at most 32 registers) rather than reading it twice.</summary>
    public bool CachesTile => !PerChannel && ChunksPerThread <= 8;

    public int Warps => Spec.Threads / 32;

    /// <summary>Position p of a transposed row holds token 16·(p / 16) + StoredOrder[p % 16] (FragmentComposition's π for TokenOrder.Pi).</summary>
    public IReadOnlyList<int> StoredOrder => FragmentComposition.GroupOrder(Spec.TransposedOrder);

    /// <summary>The kernels this variant launches, in order.</summary>
    public IReadOnlyList<QuantizeKernel> Kernels
    {
        get
        {
            var kernels = new List<QuantizeKernel>();
            if (Spec.SubtractChannelMean)
            {
                kernels.Add(ChannelMean);
            }
            if (PerChannel)
            {
                kernels.Add(ClearScales);
                kernels.Add(ChannelAbsmax);
                kernels.Add(ChannelScale);
            }
            kernels.Add(Quantize);
            return kernels;
        }
    }

    /// <summary>
    /// Every entry point of the module: <see cref="Kernels"/>, then the count-only pass over the same input, for a
    /// tensor used unquantized (V in 16-bit P·V) whose NaN and Inf must still be reported.
    /// </summary>
    public IReadOnlyList<QuantizeKernel> EntryPoints => [.. Kernels, CountNonFinite];

    public string Symbol(QuantizeKernel kernel) => Spec.KernelPrefix + kernel.Suffix;

    /// <summary>
    /// The parameters of <paramref name="kernel"/>, in the CUDA order, each with the launcher parameter, local or
    /// expression it is made from: the one list both the kernel's declaration and the launcher's arguments are written from.
    /// </summary>
    public IReadOnlyList<KernelParameter> ParametersOf(QuantizeKernel kernel)
    {
        var parameters = new List<KernelParameter>();
        void Pointer(string cudaName, string cudaType, string host) => parameters.Add(new KernelParameter(cudaName, cudaType, Passing.Pointer, host));
        void Value(string cudaName, string cudaType, string host) => parameters.Add(new KernelParameter(cudaName, cudaType, Passing.Value, host));
        void Input()
        {
            // Every kernel that reads x: the tensor at element strides.
            Pointer("x", "const u16* __restrict__", "x");
            Value("stride_b", "long long", "strideB");
            Value("stride_h", "long long", "strideH");
            Value("stride_s", "long long", "strideS");
            Value("heads", "int", "heads");
            Value("S", "int", "tokens");
        }
        void Mean()
        {
            if (Spec.SubtractChannelMean)
            {
                Pointer("mean", "const float* __restrict__", "channelMean");
            }
        }
        if (kernel == ClearScales || kernel == ChannelScale)
        {
            Pointer("scales", "float* __restrict__", "scales");
            Value("count", "int", "count");
        }
        else if (kernel == ChannelMean)
        {
            Input();
            Pointer("mean", "float* __restrict__", "channelMean");
        }
        else if (kernel == ChannelAbsmax)
        {
            Input();
            Mean();
            Value("scale_multiplier", "float", "scaleMultiplier");
            Pointer("scales", "float* __restrict__", "scales");
        }
        else if (kernel == CountNonFinite)
        {
            Input();
            Pointer("nonfinite", "unsigned int*", "nonFinite");
        }
        else
        {
            Input();
            Mean();
            Value("scale_multiplier", "float", "scaleMultiplier");
            // Per row block the kernel writes the scales it finds; per channel it reads those ChannelScale made.
            Pointer("out", $"{CodeType}* __restrict__", "output");
            Pointer("scales", PerChannel ? "const float* __restrict__" : "float* __restrict__", "scales");
            if (PerChannel && Transposed)
            {
                Value("s_pad", "int", "PaddedTokens(tokens)");
            }
            Pointer("nonfinite", "unsigned int*", "nonFinite");
        }
        return parameters;
    }

    /// <summary><see cref="ParametersOf"/> as the CUDA declaration's parameter list.</summary>
    public string CudaParameters(QuantizeKernel kernel) => KernelSignature.CudaParameterList(ParametersOf(kernel));
}
