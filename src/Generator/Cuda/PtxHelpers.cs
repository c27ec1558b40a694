using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>The device helpers a kernel may need; each atom asks for its own.</summary>
public enum PtxHelper
{
    IntMath,
    SharedAddress,
    CpAsync,
    LdgSts,
    Ldsm,
    LdsmTrans,
    Prmt,
    Movmatrix,
    F16Convert,
    Bf16Convert,
    WarpReduce,
    SoftmaxMath,
    FloatBias,
    HalfPack,
    BytePack,
    Global16,
    Stsm,
    Mbarrier,
    Tma,
    Warpgroup,
    E4m3Pack,
    Shared16,
    GridDependency,
}

/// <summary>
/// Writes inline-PTX helpers. The generated CUDA includes no toolkit header (NVRTC without the CUDA headers
/// must compile it), so every conversion and matrix instruction is spelled out here, once.
/// </summary>
public static class PtxHelpers
{
    public static IEnumerable<PtxHelper> For(CopyAtomKind atom) => atom switch
    {
        CopyAtomKind.CpAsync16 => [PtxHelper.SharedAddress, PtxHelper.CpAsync],
        CopyAtomKind.LdgSts16 => [PtxHelper.SharedAddress, PtxHelper.LdgSts],
        CopyAtomKind.Ldsm or CopyAtomKind.LdsmPretransposed => [PtxHelper.SharedAddress, PtxHelper.Ldsm],
        CopyAtomKind.LdsmTrans => [PtxHelper.SharedAddress, PtxHelper.LdsmTrans],
        CopyAtomKind.LdsmTransPrmt => [PtxHelper.SharedAddress, PtxHelper.LdsmTrans, PtxHelper.Prmt],
        CopyAtomKind.LdsmPrmtMovmatrix => [PtxHelper.SharedAddress, PtxHelper.Ldsm, PtxHelper.Prmt, PtxHelper.Movmatrix],
        CopyAtomKind.Stmatrix => [PtxHelper.SharedAddress, PtxHelper.Stsm],
        CopyAtomKind.Tma => [PtxHelper.SharedAddress, PtxHelper.Mbarrier, PtxHelper.Tma],
        _ => [],
    };

    /// <summary>The helper that widens a 16-bit <paramref name="input"/> element (f16 or bf16) to f32.</summary>
    public static PtxHelper ToFloatHelper(Element input) => input == Element.BF16 ? PtxHelper.Bf16Convert : PtxHelper.F16Convert;

    /// <summary>The name of <see cref="ToFloatHelper"/>'s function: <c>float name(u16)</c>.</summary>
    public static string ToFloat(Element input) => input == Element.BF16 ? "kdsl_bf16_to_f32" : "kdsl_f16_to_f32";

    /// <param name="biasedStart">Also write, for each int32-accumulator MMA, a form that starts from a given accumulator value.</param>
    public static void Write(CodeWriter w, IEnumerable<PtxHelper> helpers, IEnumerable<MmaAtom> mmas, bool biasedStart = false)
    {
        w.Line($"// ---- PTX helpers ----");
        foreach (var helper in helpers.Distinct().OrderBy(h => h))
        {
            Write(w, helper);
        }
        foreach (var mma in mmas.Distinct())
        {
            WriteMma(w, mma);
            if (biasedStart && mma.CElement == Element.S32 && !mma.IsWarpgroup)
            {
                WriteMmaFrom(w, mma);
            }
        }
    }

    private static void Write(CodeWriter w, PtxHelper helper)
    {
        switch (helper)
        {
            case PtxHelper.E4m3Pack:
                w.Raw("""
                    // Two floats to e4m3 (sm_90 from PTX ISA 7.8, sm_89 from 8.1): round to nearest even, |x| > 448 (and ±Inf) saturated to ±448, NaN to
                    // NaN. lo lands in byte 0 and hi in byte 1, the upper 16 bits are zero: the instruction puts its first
                    // source in the upper byte, so hi goes first.
                    static __device__ __forceinline__ u32 kdsl_e4m3x2(float lo, float hi)
                    {
                        u16 r;
                        asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(r) : "f"(hi), "f"(lo));
                        return (u32)r;
                    }
                    """);
                break;
            case PtxHelper.IntMath:
                w.Raw("""
                    static __device__ __forceinline__ int kdsl_min(int a, int b) { return a < b ? a : b; }
                    static __device__ __forceinline__ int kdsl_max(int a, int b) { return a > b ? a : b; }
                    """);
                break;
            case PtxHelper.SharedAddress:
                w.Raw("""
                    // A generic pointer into shared memory as the 32-bit shared-window address PTX wants.
                    static __device__ __forceinline__ u32 kdsl_smem(const void* p)
                    {
                        u32 a;
                        asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
                        return a;
                    }
                    """);
                break;
            case PtxHelper.CpAsync:
                w.Raw("""
                    // cp.async.cg 16 bytes (sm_80, PTX 7.0); bytes past src_bytes are zero-filled, so tails need no branch.
                    static __device__ __forceinline__ void kdsl_cp_async_16(u32 dst, const void* src, int src_bytes)
                    {
                        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(src_bytes) : "memory");
                    }
                    static __device__ __forceinline__ void kdsl_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
                    template <int N> static __device__ __forceinline__ void kdsl_cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }
                    """);
                break;
            case PtxHelper.LdgSts:
                w.Raw("""
                    // 16 bytes global → registers → shared; a partial chunk is read byte by byte and zero-filled.
                    static __device__ __forceinline__ void kdsl_ldg_sts_16(u32 dst, const void* src, int src_bytes)
                    {
                        u32 v0 = 0, v1 = 0, v2 = 0, v3 = 0;
                        if (src_bytes == 16) {
                            asm volatile("ld.global.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(v0), "=r"(v1), "=r"(v2), "=r"(v3) : "l"(src));
                        } else {
                            u32 w[4] = {0, 0, 0, 0};
                            for (int i = 0; i < src_bytes; ++i) w[i >> 2] |= (u32)((const u8*)src)[i] << (8 * (i & 3));
                            v0 = w[0]; v1 = w[1]; v2 = w[2]; v3 = w[3];
                        }
                        asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};\n" :: "r"(dst), "r"(v0), "r"(v1), "r"(v2), "r"(v3) : "memory");
                    }
                    """);
                break;
            case PtxHelper.Ldsm:
                w.Raw("""
                    // ldmatrix x4 (sm_75, PTX 6.5): lanes 8q..8q+7 address the rows of matrix q; register q gets row lane/4, bytes 4(lane%4)...
                    static __device__ __forceinline__ void kdsl_ldsm_x4(u32& r0, u32& r1, u32& r2, u32& r3, u32 addr)
                    {
                        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
                    }
                    """);
                break;
            case PtxHelper.LdsmTrans:
                w.Raw("""
                    // ldmatrix x4 .trans: transposes 16-bit elements, so each register holds two rows of one byte pair.
                    static __device__ __forceinline__ void kdsl_ldsm_x4_trans(u32& r0, u32& r1, u32& r2, u32& r3, u32 addr)
                    {
                        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
                    }
                    """);
                break;
            case PtxHelper.Prmt:
                w.Raw("""
                    // prmt.b32: result byte i is byte (selector nibble i) of b:a.
                    static __device__ __forceinline__ u32 kdsl_prmt(u32 a, u32 b, u32 selector)
                    {
                        u32 d;
                        asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(selector));
                        return d;
                    }
                    """);
                break;
            case PtxHelper.Stsm:
                w.Raw("""
                    // stmatrix x4 (sm_90, PTX 7.8): lanes 8q..8q+7 address the rows of matrix q; register q holds row lane/4, bytes 4(lane%4)...
                    static __device__ __forceinline__ void kdsl_stsm_x4(u32 addr, u32 r0, u32 r1, u32 r2, u32 r3)
                    {
                        asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" :: "r"(addr), "r"(r0), "r"(r1), "r"(r2), "r"(r3) : "memory");
                    }
                    """);
                break;
            case PtxHelper.Movmatrix:
                w.Raw("""
                    // movmatrix (sm_75, PTX 7.8): the warp's 8×8 matrix of 16-bit elements, transposed in registers.
                    static __device__ __forceinline__ u32 kdsl_movm_trans(u32 x)
                    {
                        u32 y;
                        asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
                        return y;
                    }
                    """);
                break;
            case PtxHelper.F16Convert:
                w.Raw("""
                    static __device__ __forceinline__ u16 kdsl_f32_to_f16(float x) { u16 h; asm("cvt.rn.f16.f32 %0, %1;\n" : "=h"(h) : "f"(x)); return h; }
                    static __device__ __forceinline__ float kdsl_f16_to_f32(u16 h) { float x; asm("cvt.f32.f16 %0, %1;\n" : "=f"(x) : "h"(h)); return x; }
                    """);
                break;
            case PtxHelper.Bf16Convert:
                w.Raw("""
                    static __device__ __forceinline__ float kdsl_bf16_to_f32(u16 h) { return __uint_as_float((u32)h << 16); }
                    static __device__ __forceinline__ u16 kdsl_f32_to_bf16(float x) { u16 h; asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(h) : "f"(x)); return h; }
                    """);
                break;
            case PtxHelper.SoftmaxMath:
                w.Raw("""
                    #define KDSL_INF __int_as_float(0x7f800000)
                    // ex2/lg2.approx: the SFU instructions FlashAttention's exp2 softmax is built on.
                    static __device__ __forceinline__ float kdsl_exp2(float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x)); return y; }
                    static __device__ __forceinline__ float kdsl_log2(float x) { float y; asm("lg2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x)); return y; }
                    """);
                break;
            case PtxHelper.FloatBias:
                w.Raw("""
                    // int32 <-> float without I2F/F2I, which issue at a fraction of FADD/FFMA's rate: for |i| < 2^22 the float
                    // 1.5·2^23 + i is exact and its bits are 0x4B400000 + i. An MMA that starts its int32 accumulators at the
                    // bits leaves float(bias + result) in them.
                    #define KDSL_FLOAT_BIAS 12582912.f
                    #define KDSL_FLOAT_BIAS_BITS 0x4B400000
                    """);
                break;
            case PtxHelper.GridDependency:
                w.Raw("""
                    // Programmatic dependent launch (sm_90): a kernel lets the next one, launched with programmatic stream
                    // serialization, be scheduled at once; that one waits for this one's end and writes before it reads them.
                    // Before sm_90 both are nothing, and the launches run one after the other.
                    static __device__ __forceinline__ void kdsl_launch_dependents()
                    {
                    #if __CUDA_ARCH__ >= 900
                        asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
                    #endif
                    }
                    static __device__ __forceinline__ void kdsl_wait_prerequisite()
                    {
                    #if __CUDA_ARCH__ >= 900
                        asm volatile("griddepcontrol.wait;\n" ::: "memory");
                    #endif
                    }
                    """);
                break;
            case PtxHelper.HalfPack:
                w.Raw("""
                    // Two floats into one 16-bit pair, lo in the low half: one cvt (F2FP) instead of two and a shift.
                    static __device__ __forceinline__ u32 kdsl_pack_f16x2(float lo, float hi) { u32 d; asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(d) : "f"(hi), "f"(lo)); return d; }
                    static __device__ __forceinline__ u32 kdsl_pack_bf16x2(float lo, float hi) { u32 d; asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(d) : "f"(hi), "f"(lo)); return d; }
                    """);
                break;
            case PtxHelper.BytePack:
                w.Raw("""
                    // Two scores' n·P (n ≤ 255) as one f16 pair: cvt rounds each to f16, the f16 add of 1024 rounds it to an integer
                    // k (f16's ulp is 1 in [1024, 2048)), and 1024 + k is 0x6400 + k, so k sits in each half's low byte.
                    static __device__ __forceinline__ u32 kdsl_f16x2_u8(float lo, float hi)
                    {
                        u32 d;
                        asm("{ .reg .b32 t; cvt.rn.f16x2.f32 t, %2, %1; add.rn.f16x2 %0, t, %3; }\n" : "=r"(d) : "f"(lo), "f"(hi), "r"(0x64006400u));
                        return d;
                    }
                    // acc + the four bytes of x (dp4a against 0x01010101).
                    static __device__ __forceinline__ u32 kdsl_byte_sum(u32 x, u32 acc) { u32 d; asm("dp4a.u32.u32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(x), "r"(0x01010101u), "r"(acc)); return d; }
                    """);
                break;
            case PtxHelper.Global16:
                w.Raw("""
                    // 16 bytes from global memory on the read-only path (16-byte alignment is the caller's precondition).
                    static __device__ __forceinline__ void kdsl_ld16(const void* p, u32 (&w)[4])
                    {
                        asm("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];\n" : "=r"(w[0]), "=r"(w[1]), "=r"(w[2]), "=r"(w[3]) : "l"(p));
                    }
                    // 16 bytes to global memory (16-byte aligned).
                    static __device__ __forceinline__ void kdsl_st16(void* p, u32 a, u32 b, u32 c, u32 d)
                    {
                        asm volatile("st.global.v4.u32 [%0], {%1,%2,%3,%4};\n" :: "l"(p), "r"(a), "r"(b), "r"(c), "r"(d) : "memory");
                    }
                    """);
                break;
            case PtxHelper.Shared16:
                w.Raw("""
                    // 16 bytes registers → shared memory (16-byte aligned shared-window address).
                    static __device__ __forceinline__ void kdsl_sts16(u32 addr, u32 a, u32 b, u32 c, u32 d)
                    {
                        asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};\n" :: "r"(addr), "r"(a), "r"(b), "r"(c), "r"(d) : "memory");
                    }
                    """);
                break;
            case PtxHelper.Mbarrier:
                w.Raw("""
                    // mbarriers (sm_90, PTX 8.0): a phase completes when its arrivals and expected transaction bytes are all in.
                    static __device__ __forceinline__ void kdsl_mbar_init(u32 bar, u32 arrivals)
                    {
                        asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(arrivals) : "memory");
                    }
                    // Makes the initialised barriers visible to the async proxy (TMA) before any copy names them.
                    static __device__ __forceinline__ void kdsl_mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
                    static __device__ __forceinline__ void kdsl_mbar_arrive(u32 bar)
                    {
                        asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" :: "r"(bar) : "memory");
                    }
                    // One arrival that also expects `bytes` of transactions (the TMA copies that complete on this barrier).
                    static __device__ __forceinline__ void kdsl_mbar_arrive_expect_tx(u32 bar, u32 bytes)
                    {
                        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(bar), "r"(bytes) : "memory");
                    }
                    static __device__ __forceinline__ bool kdsl_mbar_try_wait(u32 bar, u32 parity)
                    {
                        u32 done;
                        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }\n" : "=r"(done) : "r"(bar), "r"(parity) : "memory");
                        return done != 0;
                    }
                    // Waits for the phase of the given parity to complete (try_wait suspends the thread for a while each try).
                    static __device__ __forceinline__ void kdsl_mbar_wait(u32 bar, u32 parity) { while (!kdsl_mbar_try_wait(bar, parity)) { } }
                    """);
                break;
            case PtxHelper.Tma:
                w.Raw("""
                    // A TMA descriptor, passed by value as a __grid_constant__ kernel parameter (cuTensorMapEncodeTiled fills it on the host).
                    struct __align__(64) kdsl_tensor_map { unsigned long long opaque[16]; };
                    // One box of a 3- or 4-d tensor into shared memory, completing (with its byte count) on an mbarrier.
                    static __device__ __forceinline__ void kdsl_tma_load_3d(u32 dst, const kdsl_tensor_map* map, u32 bar, int c0, int c1, int c2)
                    {
                        asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n"
                            :: "r"(dst), "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(bar) : "memory");
                    }
                    static __device__ __forceinline__ void kdsl_tma_load_4d(u32 dst, const kdsl_tensor_map* map, u32 bar, int c0, int c1, int c2, int c3)
                    {
                        asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n"
                            :: "r"(dst), "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar) : "memory");
                    }
                    """);
                break;
            case PtxHelper.Warpgroup:
                w.Raw("""
                    // wgmma's shared-memory matrix descriptor for a K-major tile written by TMA with a 32/64/128-byte swizzle:
                    // start address, leading byte offset (unused when K-major and swizzled: 1), stride byte offset (8 rows), swizzle mode.
                    static __device__ __forceinline__ unsigned long long kdsl_wgmma_desc(u32 addr, u32 stride_bytes, u32 swizzle_mode)
                    {
                        return (unsigned long long)((addr & 0x3FFFF) >> 4) | (1ull << 16) | ((unsigned long long)(stride_bytes >> 4) << 32)
                            | ((unsigned long long)swizzle_mode << 62);
                    }
                    // Orders register writes before the wgmmas that read or accumulate into them.
                    static __device__ __forceinline__ void kdsl_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
                    static __device__ __forceinline__ void kdsl_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
                    template <int N> static __device__ __forceinline__ void kdsl_wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(N) : "memory"); }
                    // Keeps the compiler from touching accumulators across a wgmma wait: each register passes through an empty asm.
                    template <typename E, int T> static __device__ __forceinline__ void kdsl_fence_regs(E (&d)[T][4])
                    {
                        #pragma unroll
                        for (int i = 0; i < T; ++i) asm volatile("" : "+r"(d[i][0]), "+r"(d[i][1]), "+r"(d[i][2]), "+r"(d[i][3]) :: "memory");
                    }
                    template <int T> static __device__ __forceinline__ void kdsl_fence_regs(float (&d)[T][4])
                    {
                        #pragma unroll
                        for (int i = 0; i < T; ++i) asm volatile("" : "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3]) :: "memory");
                    }
                    // Orders this thread's generic-proxy shared-memory writes (st.shared, stmatrix) before later async-proxy reads (wgmma, TMA).
                    static __device__ __forceinline__ void kdsl_fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
                    // Named barriers among some warps of the block (id 0 is __syncthreads): sync waits, arrive only counts in.
                    static __device__ __forceinline__ void kdsl_bar_sync(int id, int threads) { asm volatile("bar.sync %0, %1;\n" :: "r"(id), "r"(threads) : "memory"); }
                    static __device__ __forceinline__ void kdsl_bar_arrive(int id, int threads) { asm volatile("bar.arrive %0, %1;\n" :: "r"(id), "r"(threads) : "memory"); }
                    // Shared-memory words and 16-byte pieces by address: the epilogue's O staging, the key-block range the warpgroups share.
                    static __device__ __forceinline__ void kdsl_st_shared_b32(u32 addr, u32 x) { asm volatile("st.shared.b32 [%0], %1;\n" :: "r"(addr), "r"(x) : "memory"); }
                    static __device__ __forceinline__ void kdsl_ld_shared_v4(u32 (&x)[4], u32 addr)
                    {
                        asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(x[0]), "=r"(x[1]), "=r"(x[2]), "=r"(x[3]) : "r"(addr) : "memory");
                    }
                    static __device__ __forceinline__ void kdsl_st_global_v4(void* p, const u32 (&x)[4])
                    {
                        asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" :: "l"(p), "r"(x[0]), "r"(x[1]), "r"(x[2]), "r"(x[3]) : "memory");
                    }
                    // Register budgets of warp specialization: the producer gives registers back, the consumers take them.
                    template <int N> static __device__ __forceinline__ void kdsl_setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" :: "n"(N)); }
                    template <int N> static __device__ __forceinline__ void kdsl_setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" :: "n"(N)); }
                    """);
                break;
            case PtxHelper.WarpReduce:
                w.Raw("""
                    static __device__ __forceinline__ float kdsl_warp_max(float x)
                    {
                        for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
                        return x;
                    }
                    static __device__ __forceinline__ float kdsl_warp_sum(float x)
                    {
                        for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
                        return x;
                    }
                    """);
                break;
        }
    }

    private static void WriteMmaFrom(CodeWriter w, MmaAtom mma)
    {
        w.Line($"// The same MMA starting from c in every accumulator: D = A·B + c, with no register moves to set D first.");
        w.Block($"static __device__ __forceinline__ void kdsl_{mma.HelperName}_from(int (&d)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1, int c)", () =>
        {
            w.Line($"asm volatile(\"{mma.Ptx} {{%0,%1,%2,%3}}, {{%4,%5,%6,%7}}, {{%8,%9}}, {{%10,%10,%10,%10}};\\n\"");
            w.Line($"    : \"=r\"(d[0]), \"=r\"(d[1]), \"=r\"(d[2]), \"=r\"(d[3])");
            w.Line($"    : \"r\"(a0), \"r\"(a1), \"r\"(a2), \"r\"(a3), \"r\"(b0), \"r\"(b1), \"r\"(c));");
        });
    }

    /// <summary>
    /// A wgmma atom: D (N/2 accumulators a thread, as [N/8][4]) += A·B, B from a descriptor, A from a descriptor (SS) or
    /// four registers (RS). The int32 forms always accumulate (scale-d = 1): callers start D where they want it. The f32
    /// (fp8) forms take scale-d as an argument: 0 overwrites D, so a fresh accumulator needs no zeroing moves.
    /// </summary>
    private static void WriteWarpgroupMma(CodeWriter w, MmaAtom mma)
    {
        var tiles = mma.N / 8;
        var regs = tiles * 4;
        var isFloat = mma.CElement == Element.F32;
        var d = string.Join(",", Enumerable.Range(0, regs).Select(i => $"%{i}"));
        var a = mma.AFromRegisters ? $"{{%{regs},%{regs + 1},%{regs + 2},%{regs + 3}}}" : $"%{regs}";
        var b = mma.AFromRegisters ? regs + 4 : regs + 1;
        var aParams = mma.AFromRegisters ? "u32 a0, u32 a1, u32 a2, u32 a3" : "unsigned long long a_desc";
        var aInputs = mma.AFromRegisters ? "\"r\"(a0), \"r\"(a1), \"r\"(a2), \"r\"(a3)" : "\"l\"(a_desc)";
        // Floating-point wgmma also takes imm-scale-a and imm-scale-b (1: A and B as they are).
        var (cType, cReg, scaleParam, scaleD, tail, scaleInput) = isFloat
            ? ("float", "f", ", int scale_d", $"setp.ne.b32 p, %{b + 1}, 0;", ", 1, 1", ", \"r\"(scale_d)")
            : ("int", "r", "", "setp.ne.b32 p, 1, 0;", "", "");
        w.Line($"// {mma.Ptx} (sm_90a, PTX {mma.MinPtxIsa / 10}.{mma.MinPtxIsa % 10}), A from {(mma.AFromRegisters ? "registers" : "shared memory")}: D = A·B + {(isFloat ? "(scale_d ? D : 0)" : "D")}, issued asynchronously.");
        w.Block($"static __device__ __forceinline__ void kdsl_{mma.HelperName}({cType} (&d)[{tiles}][4], {aParams}, unsigned long long b_desc{scaleParam})", () =>
        {
            w.Line($"asm volatile(\"{{ .reg .pred p; {scaleD}\\n\"");
            w.Line($"    \"{mma.Ptx} {{{d}}}, {a}, %{b}, p{tail}; }}\\n\"");
            for (var i = 0; i < regs; i += 8)
            {
                var chunk = string.Join(", ", Enumerable.Range(i, System.Math.Min(8, regs - i)).Select(r => $"\"+{cReg}\"(d[{r / 4}][{r % 4}])"));
                w.Line($"    {(i == 0 ? ": " : "  ")}{chunk}{(i + 8 < regs ? "," : "")}");
            }
            w.Line($"    : {aInputs}, \"l\"(b_desc){scaleInput} : \"memory\");");
        });
    }

    private static void WriteMma(CodeWriter w, MmaAtom mma)
    {
        if (mma.IsWarpgroup)
        {
            WriteWarpgroupMma(w, mma);
            return;
        }
        var cType = mma.CElement == Element.F32 ? "float" : "int";
        var cReg = mma.CElement == Element.F32 ? "f" : "r";
        w.Line($"// {mma.Ptx} (sm_{mma.MinSm}, PTX {mma.MinPtxIsa / 10}.{mma.MinPtxIsa % 10}): D = A·B + D in place.");
        w.Block($"static __device__ __forceinline__ void kdsl_{mma.HelperName}({cType} (&d)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1)", () =>
        {
            w.Line($"asm volatile(\"{mma.Ptx} {{%0,%1,%2,%3}}, {{%4,%5,%6,%7}}, {{%8,%9}}, {{%0,%1,%2,%3}};\\n\"");
            w.Line($"    : \"+{cReg}\"(d[0]), \"+{cReg}\"(d[1]), \"+{cReg}\"(d[2]), \"+{cReg}\"(d[3])");
            w.Line($"    : \"r\"(a0), \"r\"(a1), \"r\"(a2), \"r\"(a3), \"r\"(b0), \"r\"(b1));");
        });
    }
}
