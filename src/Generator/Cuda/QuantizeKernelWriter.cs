using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// Writes the Quantize family's kernels from its plan, one method per kernel. Every number that shapes the
/// arithmetic (head dim, block rows, threads, slices, token order) is baked into the text, so the CPU reference can
/// repeat the same float32 operations in the same order.
/// </summary>
public sealed class QuantizeKernelWriter(QuantizePlan plan)
{
    private readonly QuantizeSpec _spec = plan.Spec;

    /// <summary>The exponent field: all ones is Inf or NaN.</summary>
    private string ExponentMask => _spec.Input == Element.BF16 ? "0x7f80u" : "0x7c00u";

    private string Convert => PtxHelpers.ToFloat(_spec.Input);

    private bool E4m3 => _spec.Output == Element.E4M3;

    /// <summary>The value a channel's statistics and quantization see: (x − mean) · multiplier, rounded once per step.</summary>
    private string Prep(string x, string mean) => _spec.SubtractChannelMean
        ? $"kdsl_prep({x}, {mean}, scale_multiplier)"
        : $"kdsl_prep({x}, scale_multiplier)";

    /// <summary>
    /// kdsl_prep with multiplier 1, as the K/V passes and the cache's append use it: x − mean, or x. Multiplying by 1 is
    /// exact, but written as __fmul_rn the compiler keeps it: one FMUL an element, 6 % of the K/V codes kernel's.
    /// </summary>
    public static string Unscaled(string x, string? mean = null) => mean is null ? x : Centred(x, mean);

    /// <summary>x − mean, rounded once: kdsl_prep's first step, and all of <see cref="Unscaled"/>'s.</summary>
    private static string Centred(string x, string mean) => $"__fsub_rn({x}, {mean})";

    /// <summary>
    /// This family's device helpers for a kernel of another family that rounds exactly as the quantize kernels do (the KV
    /// cache's append and decode, the K/V passes, Q quantized in the attention kernel). Their text depends only on the
    /// input element, the channel mean (kdsl_prep's overload), the layout (kdsl_st8 for natural codes) and the codes' type;
    /// the spec's other fields stand for a quantize kernel that is never written.
    /// </summary>
    public static QuantizeKernelWriter HelpersFor(KernelSpec host, Element input, bool subtractChannelMean, Element output = Element.S8, bool transposed = false) =>
        new(new QuantizePlan(new QuantizeSpec
        {
            Type = host.Type, Targets = host.Targets, SmemLayouts = host.SmemLayouts, CopyAtoms = host.CopyAtoms, Mma = null,
            Input = input, Granularity = transposed ? QuantGranularity.PerChannel : QuantGranularity.PerRowBlock, BlockRows = 64, HeadDim = 128,
            SubtractChannelMean = subtractChannelMean, Transposed = transposed, TransposedOrder = TokenOrder.Pi, TransposePad = 64, Threads = 128, Output = output,
        }));

    public void WriteHelpers(CodeWriter w)
    {
        WriteReadHelpers(w);
        w.Line($"// Explicitly rounded steps (no FMA contraction, IEEE division) so the CPU reference reproduces every bit.");
        WritePrepHelper(w);
        WriteScaleHelpers(w);
        WriteCodeHelpers(w);
    }

    /// <summary>kdsl_prep: the value statistics and codes see, (x − mean) · multiplier or x · multiplier (two overloads).</summary>
    public void WritePrepHelper(CodeWriter w)
    {
        if (_spec.SubtractChannelMean)
        {
            w.Line($"static __device__ __forceinline__ float kdsl_prep(float x, float mean, float mul) {{ return __fmul_rn({Centred("x", "mean")}, mul); }}");
        }
        else
        {
            w.Line($"static __device__ __forceinline__ float kdsl_prep(float x, float mul) {{ return __fmul_rn(x, mul); }}");
        }
    }

    /// <summary>Reading 8 channels at a time and counting their NaN/Inf (and, for the natural layout, the 8-byte store).</summary>
    public void WriteReadHelpers(CodeWriter w)
    {
        w.Line($"// ---- Quantize helpers ----");
        // kdsl_ld16 reads one token's 8 channels (x and every stride 16-byte aligned: launch preconditions); the
        // transposed layout writes 16 positions of a channel row with kdsl_st16 (out 16-byte aligned, s_pad a multiple
        // of 16). Both are PtxHelper.Global16; the natural layout's 8-byte store is here.
        if (!plan.Transposed)
        {
            w.Line($"// 8 int8 channels of one token (out 8-byte aligned: a launch precondition).");
            w.Raw("""
                static __device__ __forceinline__ void kdsl_st8(void* p, u32 a, u32 b)
                {
                    asm volatile("st.global.v2.u32 [%0], {%1,%2};\n" :: "l"(p), "r"(a), "r"(b) : "memory");
                }
                """);
        }
        w.Block($"static __device__ __forceinline__ void kdsl_unpack8(const u32 (&w)[4], float (&v)[8])", () =>
        {
            w.Line($"#pragma unroll");
            w.Line($"for (int i = 0; i < 4; ++i) {{ v[2 * i] = {Convert}((u16)(w[i] & 0xffffu)); v[2 * i + 1] = {Convert}((u16)(w[i] >> 16)); }}");
        });
        w.Line($"// NaN and Inf are counted from the raw bits (exponent all ones), before any arithmetic can hide or make one.");
        w.Line($"static __device__ __forceinline__ int kdsl_nonfinite(u16 h) {{ return (h & {ExponentMask}) == {ExponentMask}; }}");
        w.Line($"// Nonzero when any of 8 values is NaN or Inf, two halves at a time: a half's exponent bits are all ones exactly when");
        w.Line($"// ~w has them all zero, and subtracting 1 from such a half borrows into its bit 15 (exact for \"any\", checked over");
        w.Line($"// all 2^32 words). Finite inputs, the normal case, pass this alone; only then are the halves counted one by one.");
        w.Block($"static __device__ __forceinline__ u32 kdsl_nonfinite_any8(const u32 (&w)[4])", () =>
        {
            w.Line($"u32 any = 0u;");
            w.Line($"#pragma unroll");
            w.Line($"for (int i = 0; i < 4; ++i) {{ const u32 x = ~w[i] & ({ExponentMask} | ({ExponentMask} << 16)); any |= (x - 0x00010001u) & ~x & 0x80008000u; }}");
            w.Line($"return any;");
        });
        w.Block($"static __device__ __forceinline__ int kdsl_nonfinite8(const u32 (&w)[4])", () =>
        {
            w.Line($"if (kdsl_nonfinite_any8(w) == 0u) return 0;");
            w.Line($"int n = 0;");
            w.Line($"#pragma unroll");
            w.Line($"for (int i = 0; i < 4; ++i) n += kdsl_nonfinite((u16)(w[i] & 0xffffu)) + kdsl_nonfinite((u16)(w[i] >> 16));");
            w.Line($"return n;");
        });
        w.Raw("""
            // Adds a block's count of NaN/Inf inputs to *nonfinite, unless it is null. All-finite warps (the normal case) pass
            // one vote and nothing else; a warp that saw any sums its count and adds it with one atomic. Every thread of the
            // block calls this after its loops, so the full-warp vote and shuffles see all 32 lanes.
            static __device__ __forceinline__ void kdsl_report_nonfinite(unsigned int* nonfinite, int n)
            {
                if (nonfinite == 0 || !__any_sync(0xffffffffu, n != 0)) return;
                for (int o = 16; o > 0; o >>= 1) n += __shfl_xor_sync(0xffffffffu, n, o);
                if ((threadIdx.x & 31) == 0) atomicAdd(nonfinite, (unsigned int)n);
            }
            """);
    }

    /// <summary>kdsl_scale_of (absmax → scale for the declared codes) and kdsl_inv_of.</summary>
    public void WriteScaleHelpers(CodeWriter w)
    {
        WriteScaleOf(w, "kdsl_scale_of");
        w.Raw("""
            // Codes are v times 1 / scale, rounded once per block or channel, so no element pays for a division.
            static __device__ __forceinline__ float kdsl_inv_of(float scale) { return __fdiv_rn(1.0f, scale); }
            """);
    }

    /// <summary>
    /// The absmax → scale helper for the declared codes under the name <paramref name="name"/>: a kernel that scales two
    /// kinds of codes (int8 K and e4m3 V) needs both.
    /// </summary>
    public void WriteScaleOf(CodeWriter w, string name)
    {
        var largest = E4m3 ? "448" : "127";
        w.Raw($$"""
            // scale = absmax / {{largest}}{{(E4m3 ? " (e4m3's largest finite value)" : "")}}. A block (or channel) whose absmax / {{largest}} is below the smallest normal
            // float (0 included; 1 / scale would overflow to Inf, and 0 · Inf is NaN) gets scale 1: every q is then 0 and q · scale stays finite.
            static __device__ __forceinline__ float {{name}}(float absmax)
            {
                const float s = __fdiv_rn(absmax, {{largest}}.0f);
                return s < 1.17549435e-38f ? 1.0f : s;
            }
            """);
    }

    /// <summary>The code of one value: kdsl_quant (int8) or kdsl_quant_e4m3x2.</summary>
    public void WriteCodeHelpers(CodeWriter w)
    {
        if (E4m3)
        {
            w.Raw("""
                // Two codes: each product v · inv rounded to float (__fmul_rn, as the CPU reference's float product), then to
                // e4m3, nearest even, saturating at ±448; v0's code in byte 0, v1's in byte 1. The largest |v| of a channel
                // gives 448 or the float just below or above it, which rounds to 448, so saturation only catches rounding.
                // NaN and Inf: fmaxf ignores NaN, so a NaN never raises absmax, and its product is NaN: the code is e4m3's NaN
                // (0x7F), which P·V carries into the output instead of hiding it. An Inf makes absmax and scale Inf and inv 0:
                // the Inf becomes Inf·0 = NaN (0x7F) and every finite value of its channel 0. The quantize kernel also counts
                // the NaN and Inf it read (nonfinite).
                static __device__ __forceinline__ u32 kdsl_quant_e4m3x2(float v0, float inv0, float v1, float inv1)
                {
                    return kdsl_e4m3x2(__fmul_rn(v0, inv0), __fmul_rn(v1, inv1));
                }
                """);
            return;
        }
        w.Raw("""
            // q = the exact product v · inv rounded half to even, clamped to [-127, 127] so the range is symmetric (no -128).
            // The FFMA with 1.5·2^23 rounds the product to an integer in the low bits (no F2I, which issues on the slow XU
            // pipe) while |v · inv| < 2^22; beyond that rounding is still monotonic, so clamping r to 1.5·2^23 ± 127 clamps the
            // code. Branch-free: a branch per element was 64 of the int8 K/V codes kernel's 136 (PERF_NOTES §16).
            // NaN and Inf: fmaxf ignores NaN, so a NaN never raises absmax, and a NaN product quantizes to 0. An Inf makes
            // absmax and scale Inf and inv 0: the Inf itself becomes Inf·0 = NaN -> 0, and every finite value of its block
            // (or channel) becomes 0. With SubtractChannelMean a NaN or Inf also poisons its channel's mean.
            // None of that is visible in the codes, so the quantize kernel counts the NaN and Inf it read (nonfinite).
            static __device__ __forceinline__ int kdsl_quant(float v, float inv)
            {
                const float r = __fmaf_rn(v, inv, 12582912.0f);
                return r != r ? 0 : __float_as_int(fminf(fmaxf(r, 12582785.0f), 12583039.0f)) - 0x4B400000;
            }
            static __device__ __forceinline__ u32 kdsl_byte(int q, int shift) { return (u32)(u8)(s8)q << shift; }
            """);
    }

    /// <summary>Per (batch, head, channel) mean over all S tokens, in a fixed order.</summary>
    public void WriteChannelMean(CodeWriter w)
    {
        var d = plan.HeadDim;
        w.Line($"// Channel mean (K smoothing): one block per (batch, head). Thread t sums chunk t % {plan.ChunksPerRow} (8 channels) of tokens");
        w.Line($"// t / {plan.ChunksPerRow}, + {plan.Slices}, + {2 * plan.Slices}, ... in float32 in token order; the {plan.Slices} slice sums are then added in slice");
        w.Line($"// order. The order is fixed, so the result is deterministic and the CPU reference repeats it bit for bit.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads})");
        w.Block($"{plan.Symbol(QuantizePlan.ChannelMean)}({plan.CudaParameters(QuantizePlan.ChannelMean)})", () =>
        {
            w.Line($"__shared__ float partial[{plan.Slices}][{d}];");
            w.Line($"const int bh = blockIdx.x, b = bh / heads, h = bh % heads;");
            w.Line($"const u16* const xs = x + b * stride_b + h * stride_h;");
            w.Line($"const int chunk = threadIdx.x % {plan.ChunksPerRow}, slice = threadIdx.x / {plan.ChunksPerRow};");
            w.Block($"if (slice < {plan.Slices})", () =>
            {
                w.Line($"float sum[8] = {{0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f}};");
                WriteSliceTokens(w, "", "S", QuantizePlan.LoadsInFlight, "sum[j] = __fadd_rn(sum[j], v[j])", "the adds keep token order");
                w.Line($"#pragma unroll");
                w.Line($"for (int j = 0; j < 8; ++j) partial[slice][chunk * 8 + j] = sum[j];");
            });
            w.Line($"__syncthreads();");
            w.Block($"for (int c = threadIdx.x; c < {d}; c += {plan.Threads})", () =>
            {
                w.Line($"float total = 0.0f;");
                w.Line($"for (int i = 0; i < {plan.Slices}; ++i) total = __fadd_rn(total, partial[i][c]);");
                w.Line($"mean[(long long)bh * {d} + c] = __fdiv_rn(total, (float)S);");
            });
        });
    }

    /// <summary>
    /// A statistics kernel's walk over its slice's tokens r = slice, slice + Slices, ... below <paramref name="end"/>
    /// (from <paramref name="origin"/>): <paramref name="inFlight"/> tokens' 16-byte loads are issued before any is
    /// reduced (one load at a time leaves DRAM idle), then <paramref name="reduce"/> (in j) runs on each in token order.
    /// </summary>
    private void WriteSliceTokens(CodeWriter w, string origin, string end, int inFlight, string reduce, string order)
    {
        w.Line($"// {inFlight} tokens' loads are issued before any is reduced (one load at a time leaves DRAM idle); {order}.");
        w.Block($"for (int r = slice; r < {end}; r += {inFlight * plan.Slices})", () =>
        {
            w.Line($"u32 raw[{inFlight}][4];");
            w.Line($"#pragma unroll");
            w.Line($"for (int u = 0; u < {inFlight}; ++u) if (r + u * {plan.Slices} < {end}) kdsl_ld16(xs + ({origin}r + u * {plan.Slices}) * stride_s + chunk * 8, raw[u]);");
            w.Line($"#pragma unroll");
            w.Block($"for (int u = 0; u < {inFlight}; ++u)", () =>
            {
                w.Line($"if (r + u * {plan.Slices} >= {end}) continue;  // continue, not break: a loop left early is not unrolled, and raw[] would go to local memory");
                w.Line($"float v[8];");
                w.Line($"kdsl_unpack8(raw[u], v);");
                w.Line($"#pragma unroll");
                w.Line($"for (int j = 0; j < 8; ++j) {reduce};");
            });
        });
    }

    public void WriteClearScales(CodeWriter w)
    {
        w.Line($"// Per-channel absmax is gathered with atomicMax, which needs a zeroed start.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads})");
        w.Block($"{plan.Symbol(QuantizePlan.ClearScales)}({plan.CudaParameters(QuantizePlan.ClearScales)})", () =>
        {
            w.Line($"const int i = blockIdx.x * {plan.Threads} + threadIdx.x;");
            w.Line($"if (i < count) scales[i] = 0.0f;");
        });
    }

    /// <summary>PerChannel pass 1: absmax per (batch, head, channel) over all tokens, tile by tile, with atomics.</summary>
    public void WriteChannelAbsmax(CodeWriter w)
    {
        var d = plan.HeadDim;
        w.Line($"// Per-channel absmax: one block per (batch·head, tile of {_spec.BlockRows} tokens). absmax is non-negative (or +Inf), and such floats");
        w.Line($"// order like their bit patterns as ints, so atomicMax on the bits is an exact, order-free float max.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads})");
        w.Block($"{plan.Symbol(QuantizePlan.ChannelAbsmax)}({plan.CudaParameters(QuantizePlan.ChannelAbsmax)})", () =>
        {
            w.Line($"__shared__ int block_max[{d}];");
            w.Line($"for (int c = threadIdx.x; c < {d}; c += {plan.Threads}) block_max[c] = 0;");
            w.Line($"__syncthreads();");
            WriteTileOrigin(w, "S");
            w.Line($"const int rows = kdsl_min({_spec.BlockRows}, S - s0);");
            w.Line($"const int chunk = threadIdx.x % {plan.ChunksPerRow}, slice = threadIdx.x / {plan.ChunksPerRow};");
            w.Block($"if (slice < {plan.Slices})", () =>
            {
                WriteMeanLoad(w, "chunk * 8");
                w.Line($"float amax[8] = {{0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f}};");
                WriteSliceTokens(w, "s0 + ", "rows", System.Math.Min(QuantizePlan.LoadsInFlight, (_spec.BlockRows + plan.Slices - 1) / plan.Slices),
                    $"amax[j] = fmaxf(amax[j], fabsf({Prep("v[j]", "m[j]")}))", "max is order-free");
                w.Line($"#pragma unroll");
                w.Line($"for (int j = 0; j < 8; ++j) atomicMax(&block_max[chunk * 8 + j], __float_as_int(amax[j]));");
            });
            w.Line($"__syncthreads();");
            w.Line($"for (int c = threadIdx.x; c < {d}; c += {plan.Threads}) atomicMax((int*)scales + (long long)bh * {d} + c, block_max[c]);");
        });
    }

    public void WriteChannelScale(CodeWriter w)
    {
        w.Line($"// Per-channel absmax → scale, in place, once every tile has contributed.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads})");
        w.Block($"{plan.Symbol(QuantizePlan.ChannelScale)}({plan.CudaParameters(QuantizePlan.ChannelScale)})", () =>
        {
            w.Line($"const int i = blockIdx.x * {plan.Threads} + threadIdx.x;");
            w.Line($"if (i < count) scales[i] = kdsl_scale_of(scales[i]);");
        });
    }

    /// <summary>The NaN/Inf count alone, over the same input as the quantize kernel, for a tensor used unquantized.</summary>
    public void WriteCountNonFinite(CodeWriter w)
    {
        var cpr = plan.ChunksPerRow;
        w.Line($"// NaN/Inf count without quantizing, for a tensor used as it is (V when P·V runs in 16-bit floats): one block per");
        w.Line($"// (batch·head, tile of {_spec.BlockRows} tokens), each thread 8 channels of one token at a time, as the quantize kernel reads them.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads})");
        w.Block($"{plan.Symbol(QuantizePlan.CountNonFinite)}({plan.CudaParameters(QuantizePlan.CountNonFinite)})", () =>
        {
            WriteTileOrigin(w, "S");
            w.Line($"const int rows = kdsl_min({_spec.BlockRows}, S - s0);");
            w.Line($"int n_nonfinite = 0;");
            w.Block($"for (int e = threadIdx.x; e < rows * {cpr}; e += {plan.Threads})", () =>
            {
                w.Line($"const int r = e / {cpr}, chunk = e % {cpr};");
                w.Line($"u32 raw[4];");
                w.Line($"kdsl_ld16(xs + (s0 + r) * stride_s + chunk * 8, raw);");
                w.Line($"n_nonfinite += kdsl_nonfinite8(raw);");
            });
            w.Line($"kdsl_report_nonfinite(nonfinite, n_nonfinite);");
        });
    }

    public void WriteQuantize(CodeWriter w)
    {
        if (!plan.PerChannel)
        {
            WriteRowBlockQuantize(w);
        }
        else if (plan.Transposed)
        {
            WriteTransposedQuantize(w);
        }
        else
        {
            WriteChannelQuantize(w);
        }
    }

    private void WriteTileOrigin(CodeWriter w, string extent)
    {
        w.Line($"const int tiles = ({extent} + {_spec.BlockRows - 1}) / {_spec.BlockRows};");
        w.Line($"const int bh = blockIdx.x / tiles, tile = blockIdx.x % tiles;");
        w.Line($"const int b = bh / heads, h = bh % heads;");
        w.Line($"const u16* const xs = x + b * stride_b + h * stride_h;");
        w.Line($"const int s0 = tile * {_spec.BlockRows};");
    }

    /// <summary>1 / scale of every channel of this (batch, head), once per block into shared inv[], for the per-channel kernels.</summary>
    private void WriteChannelInverses(CodeWriter w)
    {
        var d = plan.HeadDim;
        w.Line($"__shared__ float inv[{d}];  // 1 / scale per channel: one division per channel and block, none per element");
        w.Line($"for (int c = threadIdx.x; c < {d}; c += {plan.Threads}) inv[c] = kdsl_inv_of(scales[(long long)bh * {d} + c]);");
        w.Line($"__syncthreads();");
    }

    /// <summary>Token s0 + r's chunk of 8 channels: read (16 bytes), counted if non-finite, widened into v, with its means in m.</summary>
    private void WriteCountedChunkLoad(CodeWriter w)
    {
        w.Line($"u32 raw[4];");
        w.Line($"float v[8];");
        w.Line($"kdsl_ld16(xs + (s0 + r) * stride_s + chunk * 8, raw);");
        w.Line($"n_nonfinite += kdsl_nonfinite8(raw);");
        w.Line($"kdsl_unpack8(raw, v);");
        WriteMeanLoad(w, "chunk * 8");
    }

    private void WriteMeanLoad(CodeWriter w, string channel)
    {
        if (_spec.SubtractChannelMean)
        {
            w.Line($"float m[8];");
            w.Line($"#pragma unroll");
            w.Line($"for (int j = 0; j < 8; ++j) m[j] = mean[(long long)bh * {plan.HeadDim} + {channel} + j];");
        }
    }

    private void WriteRowBlockQuantize(CodeWriter w)
    {
        var d = plan.HeadDim;
        var cpr = plan.ChunksPerRow;
        var cpt = plan.ChunksPerThread;
        w.Line($"// PerRowBlock: one block per (batch·head, tile of {_spec.BlockRows} tokens), one scale per tile: absmax over the tile's");
        w.Line($"// (x{(_spec.SubtractChannelMean ? " − mean" : "")}) · scale_multiplier (how attention folds softmax scale · log2 e into Q), then");
        w.Line($"// q = rne(v · (1 / scale)) into [B][H][S][{d}] int8. Thread t handles chunks t, t + {plan.Threads}, ... ({cpt} per thread) of the");
        var keep = plan.CachesTile
            ? $"they stay in registers ({4 * cpt} of them) between the two passes."
            : "the tile is read twice (the second time from cache) rather than held in registers.";
        w.Line($"// tile's {_spec.BlockRows}×{cpr} 16-byte chunks; {keep}");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads})");
        w.Block($"{plan.Symbol(QuantizePlan.Quantize)}({plan.CudaParameters(QuantizePlan.Quantize)})", () =>
        {
            w.Line($"__shared__ float warp_max[{plan.Warps}];");
            WriteTileOrigin(w, "S");
            w.Line($"const int rows = kdsl_min({_spec.BlockRows}, S - s0);");
            w.Line($"const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;");
            if (plan.CachesTile)
            {
                w.Line($"u32 tile_raw[{cpt}][4];");
            }
            w.Line($"float amax = 0.0f;");
            w.Line($"int n_nonfinite = 0;");
            w.Line($"#pragma unroll");
            w.Block($"for (int i = 0; i < {cpt}; ++i)", () =>
            {
                w.Line($"const int e = threadIdx.x + i * {plan.Threads};");
                w.Line($"const int r = e / {cpr}, chunk = e % {cpr};");
                w.Block($"if (r < rows)", () =>
                {
                    var raw = plan.CachesTile ? "tile_raw[i]" : "raw";
                    if (!plan.CachesTile)
                    {
                        w.Line($"u32 raw[4];");
                    }
                    w.Line($"float v[8];");
                    w.Line($"kdsl_ld16(xs + (s0 + r) * stride_s + chunk * 8, {raw});");
                    w.Line($"n_nonfinite += kdsl_nonfinite8({raw});");
                    w.Line($"kdsl_unpack8({raw}, v);");
                    WriteMeanLoad(w, "chunk * 8");
                    w.Line($"#pragma unroll");
                    w.Line($"for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf({Prep("v[j]", "m[j]")}));");
                });
            });
            w.Line($"// Counted in this pass only: {(plan.CachesTile ? "the quantize pass reuses the registers" : "the quantize pass reads the tile again")}.");
            w.Line($"kdsl_report_nonfinite(nonfinite, n_nonfinite);");
            w.Line($"// Block absmax: a warp butterfly, then the {plan.Warps} warp maxima through shared memory (max is exact in any order).");
            w.Line($"amax = kdsl_warp_max(amax);");
            w.Line($"if (lane == 0) warp_max[warp] = amax;");
            w.Line($"__syncthreads();");
            w.Line($"amax = warp_max[0];");
            w.Line($"#pragma unroll");
            w.Line($"for (int i = 1; i < {plan.Warps}; ++i) amax = fmaxf(amax, warp_max[i]);");
            w.Line($"const float scale = kdsl_scale_of(amax), inv = kdsl_inv_of(scale);");
            w.Line($"if (threadIdx.x == 0) scales[(long long)bh * tiles + tile] = scale;");
            // Re-reading, eight loads in flight: fully unrolled, ptxas (11.8, sm_80) hoists all sixteen and spills.
            w.Line($"#pragma unroll{(plan.CachesTile ? "" : " 8")}");
            w.Block($"for (int i = 0; i < {cpt}; ++i)", () =>
            {
                w.Line($"const int e = threadIdx.x + i * {plan.Threads};");
                w.Line($"const int r = e / {cpr}, chunk = e % {cpr};");
                w.Line($"if (r >= rows) continue;");
                var raw = plan.CachesTile ? "tile_raw[i]" : "raw";
                if (!plan.CachesTile)
                {
                    w.Line($"u32 raw[4];");
                    w.Line($"kdsl_ld16(xs + (s0 + r) * stride_s + chunk * 8, raw);");
                }
                w.Line($"float v[8];");
                w.Line($"kdsl_unpack8({raw}, v);");
                WriteMeanLoad(w, "chunk * 8");
                WriteQuantizeStore8(w, _ => "inv", $"out + ((long long)bh * S + s0 + r) * {d} + chunk * 8");
            });
        });
    }

    /// <param name="inverse">1 / scale of the element with the given index expression.</param>
    private void WriteQuantizeStore8(CodeWriter w, System.Func<string, string> inverse, string address)
    {
        if (E4m3)
        {
            // Four pairs: codes of channels 2i and 2i + 1 are bytes 2i and 2i + 1 of the 8-byte store.
            string Pair(int j) => $"kdsl_quant_e4m3x2({Prep($"v[{j}]", $"m[{j}]")}, {inverse($"{j}")}, {Prep($"v[{j + 1}]", $"m[{j + 1}]")}, {inverse($"{j + 1}")})";
            w.Line($"const u32 lo = {Pair(0)} | ({Pair(2)} << 16);");
            w.Line($"const u32 hi = {Pair(4)} | ({Pair(6)} << 16);");
            w.Line($"kdsl_st8({address}, lo, hi);");
            return;
        }
        w.Line($"u32 lo = 0, hi = 0;");
        w.Line($"#pragma unroll");
        w.Line($"for (int j = 0; j < 4; ++j) lo |= kdsl_byte(kdsl_quant({Prep("v[j]", "m[j]")}, {inverse("j")}), 8 * j);");
        w.Line($"#pragma unroll");
        w.Line($"for (int j = 4; j < 8; ++j) hi |= kdsl_byte(kdsl_quant({Prep("v[j]", "m[j]")}, {inverse("j")}), 8 * (j - 4));");
        w.Line($"kdsl_st8({address}, lo, hi);");
    }

    private void WriteChannelQuantize(CodeWriter w)
    {
        var d = plan.HeadDim;
        var cpr = plan.ChunksPerRow;
        w.Line($"// PerChannel, [B][H][S][{d}] output: one block per (batch·head, tile of {_spec.BlockRows} tokens), each thread one 8-channel chunk");
        w.Line($"// of one token at a time, with the per-channel scales the absmax and scale kernels left in `scales`.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads})");
        w.Block($"{plan.Symbol(QuantizePlan.Quantize)}({plan.CudaParameters(QuantizePlan.Quantize)})", () =>
        {
            WriteTileOrigin(w, "S");
            w.Line($"const int rows = kdsl_min({_spec.BlockRows}, S - s0);");
            w.Line($"int n_nonfinite = 0;");
            WriteChannelInverses(w);
            w.Block($"for (int e = threadIdx.x; e < rows * {cpr}; e += {plan.Threads})", () =>
            {
                w.Line($"const int r = e / {cpr}, chunk = e % {cpr};");
                WriteCountedChunkLoad(w);
                WriteQuantizeStore8(w, j => $"inv[chunk * 8 + {j}]", $"out + ((long long)bh * S + s0 + r) * {d} + chunk * 8");
            });
            w.Line($"kdsl_report_nonfinite(nonfinite, n_nonfinite);");
        });
    }

    private void WriteTransposedQuantize(CodeWriter w)
    {
        var d = plan.HeadDim;
        var rows = _spec.BlockRows;
        var order = plan.StoredOrder;
        var pitch = QuantizePlan.StagingPitch(rows);
        var pieces = rows / QuantizePlan.GroupTokens;
        // Token t of a 16-token group sits at position (positions >> 4t) & 15: the stored order, inverted, as one constant.
        var positions = 0UL;
        for (var p = 0; p < QuantizePlan.GroupTokens; p++)
        {
            positions |= (ulong)p << (4 * order[p]);
        }
        w.Line($"// PerChannel, transposed: out is [B][H][{d}][s_pad], s_pad = S rounded up to {_spec.TransposePad}. Within each 16-token group,");
        var why = _spec.TransposedOrder == TokenOrder.Pi ? ": the order P leaves the S accumulators in, so P·V loads B with plain ldmatrix)." : ").";
        w.Line($"// stored position p holds token [{string.Join(", ", order)}][p] ({_spec.TransposedOrder} order{why}");
        w.Line($"// One block per (batch·head, {rows} positions), through shared memory: each thread reads 16-byte chunks of 8 channels");
        w.Line($"// (a warp: one chunk of 32 tokens), quantizes them and writes the codes into a [{d}][{pitch}]-byte tile at their positions;");
        w.Line($"// then each thread stores 16-byte pieces of channel rows (a warp: {32 * 16 / rows} rows of {rows} bytes). Positions of tokens >= S are zero.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads})");
        w.Block($"{plan.Symbol(QuantizePlan.Quantize)}({plan.CudaParameters(QuantizePlan.Quantize)})", () =>
        {
            w.Line($"struct __align__(16) kdsl_piece {{ u32 x, y, z, w; }};");
            w.Line($"__shared__ __align__(16) {plan.CodeType} staged[{d} * {pitch}];  // {pitch}-byte rows: the 16 spare bytes spread the store pass's 16-byte reads over the banks");
            WriteTileOrigin(w, "s_pad");
            WriteChannelInverses(w);
            w.Line($"int n_nonfinite = 0;");
            w.Block($"for (int e = threadIdx.x; e < {rows * plan.ChunksPerRow}; e += {plan.Threads})", () =>
            {
                w.Line($"const int r = e % {rows}, chunk = e / {rows};");
                w.Line($"const int pos = (r & ~15) | (int)((0x{positions:X16}ull >> (4 * (r & 15))) & 15u);");
                w.Line($"{plan.CodeType}* const codes = staged + chunk * 8 * {pitch} + pos;");
                w.Block($"if (s0 + r < S)", () =>
                {
                    WriteCountedChunkLoad(w);
                    w.Line($"#pragma unroll");
                    if (E4m3)
                    {
                        w.Block($"for (int j = 0; j < 8; j += 2)", () =>
                        {
                            w.Line($"const u32 pair = kdsl_quant_e4m3x2({Prep("v[j]", "m[j]")}, inv[chunk * 8 + j], {Prep("v[j + 1]", "m[j + 1]")}, inv[chunk * 8 + j + 1]);");
                            w.Line($"codes[j * {pitch}] = (u8)pair;");
                            w.Line($"codes[(j + 1) * {pitch}] = (u8)(pair >> 8);");
                        });
                    }
                    else
                    {
                        w.Line($"for (int j = 0; j < 8; ++j) codes[j * {pitch}] = (s8)kdsl_quant({Prep("v[j]", "m[j]")}, inv[chunk * 8 + j]);");
                    }
                }, close: "}");
                w.Block($"else", () =>
                {
                    w.Line($"#pragma unroll");
                    w.Line($"for (int j = 0; j < 8; ++j) codes[j * {pitch}] = 0;");
                });
            });
            w.Line($"__syncthreads();");
            w.Block($"for (int q = threadIdx.x; q < {d * pieces}; q += {plan.Threads})", () =>
            {
                w.Line($"const int c = q / {pieces}, p0 = (q % {pieces}) * 16;");
                w.Line($"if (s0 + p0 >= s_pad) continue;  // s_pad is a multiple of 16");
                w.Line($"const kdsl_piece piece = *(const kdsl_piece*)(staged + c * {pitch} + p0);  // one 16-byte shared load");
                w.Line($"kdsl_st16(out + ((long long)bh * {d} + c) * s_pad + s0 + p0, piece.x, piece.y, piece.z, piece.w);");
            });
            w.Line($"kdsl_report_nonfinite(nonfinite, n_nonfinite);");
        });
    }
}
