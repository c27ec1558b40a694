using System.Collections.Generic;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>
/// What a KvStatistics variant derives from its declaration: the thread → (token, channel chunk) mapping, the summation
/// order of K's channel mean, its two kernels and their signatures. The CUDA writer, the launcher writer and (through the
/// launcher's constants) the CPU reference all read this, so no number is computed twice.
/// </summary>
public sealed record KvStatisticsPlan(KvStatisticsSpec Spec)
{
    /// <summary>Channels per 16-byte load of f16/bf16.</summary>
    public const int ChunkChannels = 8;

    /// <summary>Tokens whose K and V loads one thread issues before it reduces any: 2 × 8 × 16 bytes in flight a thread.</summary>
    public const int LoadsInFlight = 8;

    /// <summary>
    /// K's mean adds the slices of a (batch, head) in groups of this many: each group in slice order, then the groups in
    /// order. A single pass (KvSinglePass) combines each group when its last slice arrives, so the block that closes a head
    /// adds max(this, groups) rows, not one per slice; with at most this many slices it is plain slice order.
    /// </summary>
    public const int SliceGroup = 16;

    public int HeadDim => Spec.HeadDim;
    public int Threads => Spec.Threads;
    public int SliceTokens => Spec.SliceTokens;

    /// <summary>16-byte chunks in one token's row of channels.</summary>
    public int ChunksPerRow => Spec.HeadDim / ChunkChannels;

    /// <summary>
    /// Token lanes of a block: thread t reads chunk t % ChunksPerRow of the slice's tokens t / ChunksPerRow, + Lanes,
    /// + 2·Lanes, ...; threads past Lanes·ChunksPerRow idle. K's sums go: each lane in token order, the lanes of a slice
    /// in lane order, the slices of a (batch, head) in slice order within groups of SliceGroup, then the groups in order; then one division by the token count.
    /// </summary>
    public int Lanes => System.Math.Max(1, Spec.Threads / ChunksPerRow);

    /// <summary>Static shared memory: each lane's 8-channel sums (K) and maxima (V), for the block's ordered combine.</summary>
    public static int SharedBytes(int headDim, int threads) => 2 * 4 * System.Math.Max(1, threads / (headDim / ChunkChannels)) * headDim;

    public int SharedMemoryBytes => SharedBytes(Spec.HeadDim, Spec.Threads);

    /// <summary>The largest V code the scale maps absmax to: 127 (s8) or 448 (e4m3).</summary>
    public int LargestVCode => Spec.VOutput == Element.E4M3 ? 448 : 127;

    public string PartialsSymbol => Spec.KernelPrefix + "_partials";
    public string CombineSymbol => Spec.KernelPrefix + "_combine";

    /// <summary>The C# element of a 16-bit buffer of the declared input: .NET has no bfloat16, so bf16 bits travel as ushort.</summary>
    public string InputElement => Spec.Input.CSharpName();

    /// <summary>The launcher's parameters, once; both kernels' parameters name them (or the launcher's locals slices and count).</summary>
    public EquatableArray<HostParameter> Host
    {
        get
        {
            var input = Spec.Input == Element.BF16 ? "bf16" : "f16";
            var d = Spec.HeadDim;
            return new List<HostParameter>
            {
                new("stream", HostKind.Stream, "", false, "the stream the kernels run on"),
                new("k", HostKind.Buffer, InputElement, false, $"K, {input} [batch, heads, tokens, {d}] at strides (kStrideB, kStrideH, kStrideS), channels contiguous"),
                new("kStrideB", HostKind.Scalar, "long", false, "K's batch stride, in elements"),
                new("kStrideH", HostKind.Scalar, "long", false, "K's head stride, in elements"),
                new("kStrideS", HostKind.Scalar, "long", false, "K's token stride, in elements"),
                new("v", HostKind.Buffer, InputElement, true, $"V, {input} [batch, heads, tokens, {d}] at strides (vStrideB, vStrideH, vStrideS), channels contiguous; null: K's mean alone, vScale all 1 and V not counted (a mode that reads V as it is)"),
                new("vStrideB", HostKind.Scalar, "long", false, "V's batch stride, in elements"),
                new("vStrideH", HostKind.Scalar, "long", false, "V's head stride, in elements"),
                new("vStrideS", HostKind.Scalar, "long", false, "V's token stride, in elements"),
                new("batch", HostKind.Scalar, "int", false, "batch size"),
                new("heads", HostKind.Scalar, "int", false, "heads of K and V"),
                new("tokens", HostKind.Scalar, "int", false, "tokens of K and V"),
                new("kMean", HostKind.Buffer, "float", false, $"K's channel mean over all tokens, [batch·heads][{d}] float32 (written)"),
                new("vScale", HostKind.Buffer, "float", false, $"V's scale per channel, absmax over all tokens / {LargestVCode} (1 where that is 0), [batch·heads][{d}] (written)"),
                new("workspace", HostKind.Buffer, "float", false, "the slices' partial sums and maxima (WorkspaceLength)"),
                new("kNonFinite", HostKind.Buffer, "uint", true, "where K's NaN and Inf count is added (element 0), or null"),
                new("vNonFinite", HostKind.Buffer, "uint", true, "where V's NaN and Inf count is added (element 0), or null"),
            }.ToEquatableArray();
        }
    }

    /// <summary>The first kernel: one block per (batch·head, slice of SliceTokens tokens) of K and V together.</summary>
    public KernelSignature Partials => new(Host, new List<KernelParameter>
    {
        new("k", "const u16* __restrict__", Passing.Pointer, "k"),
        new("k_stride_b", "long long", Passing.Value, "kStrideB"),
        new("k_stride_h", "long long", Passing.Value, "kStrideH"),
        new("k_stride_s", "long long", Passing.Value, "kStrideS"),
        new("v", "const u16* __restrict__", Passing.Pointer, "v"),
        new("v_stride_b", "long long", Passing.Value, "vStrideB"),
        new("v_stride_h", "long long", Passing.Value, "vStrideH"),
        new("v_stride_s", "long long", Passing.Value, "vStrideS"),
        new("heads", "int", Passing.Value, "heads"),
        new("S", "int", Passing.Value, "tokens"),
        new("partials", "float* __restrict__", Passing.Pointer, "workspace"),
        new("k_nonfinite", "unsigned int*", Passing.Pointer, "kNonFinite"),
        new("v_nonfinite", "unsigned int*", Passing.Pointer, "vNonFinite"),
    }.ToEquatableArray());

    /// <summary>The second kernel: one thread per (batch·head, channel), the slices in slice order within groups, then the groups.</summary>
    public KernelSignature Combine => new(Host, new List<KernelParameter>
    {
        new("partials", "const float* __restrict__", Passing.Pointer, "workspace"),
        new("slices", "int", Passing.Value, "slices"),
        new("parts", "int", Passing.Value, "(int)parts"),  // the launcher's local, checked to fit an int
        new("S", "int", Passing.Value, "tokens"),
        new("k_mean", "float* __restrict__", Passing.Pointer, "kMean"),
        new("v_scale", "float* __restrict__", Passing.Pointer, "vScale"),
    }.ToEquatableArray());
}
