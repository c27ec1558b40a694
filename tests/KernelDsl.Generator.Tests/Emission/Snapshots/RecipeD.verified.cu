typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
// ---- PTX helpers ----
// A generic pointer into shared memory as the 32-bit shared-window address PTX wants.
static __device__ __forceinline__ u32 kdsl_smem(const void* p)
{
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}
// ldmatrix x4 .trans: transposes 16-bit elements, so each register holds two rows of one byte pair.
static __device__ __forceinline__ void kdsl_ldsm_x4_trans(u32& r0, u32& r1, u32& r2, u32& r3, u32 addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
// prmt.b32: result byte i is byte (selector nibble i) of b:a.
static __device__ __forceinline__ u32 kdsl_prmt(u32 a, u32 b, u32 selector)
{
    u32 d;
    asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(selector));
    return d;
}
// stmatrix x4 (sm_90, PTX 7.8): lanes 8q..8q+7 address the rows of matrix q; register q holds row lane/4, bytes 4(lane%4)...
static __device__ __forceinline__ void kdsl_stsm_x4(u32 addr, u32 r0, u32 r1, u32 r2, u32 r3)
{
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" :: "r"(addr), "r"(r0), "r"(r1), "r"(r2), "r"(r3) : "memory");
}
// One warp: v is 32 keys × 16 channels (int8, row-major); vt gets 16 channels × 32 key slots, slot s holding key π(s).
extern "C" __global__ void kdsl_recipe_d(const u8* __restrict__ v, u8* __restrict__ vt)
{
    __shared__ __align__(128) u8 tile[32 * 16];
    __shared__ __align__(128) u8 transposed[16 * 32];
    const int lane = threadIdx.x;
    for (int i = lane; i < 32 * 16; i += 32) tile[i] = v[i];
    __syncwarp();
    const int v_row = (lane & 1) + ((lane >> 1) & 1) * 2 + ((lane >> 2) & 1) * 4 + ((lane >> 3) & 1) * 8 + ((lane >> 4) & 1) * 16;
    const int v_chunk = 0;
    const int t_row = (lane & 1) * 2 + ((lane >> 1) & 1) * 4 + ((lane >> 2) & 1) * 8 + ((lane >> 4) & 1);
    const int t_chunk = ((lane >> 3) & 1);
    u32 vr0, vr1, vr2, vr3;
    kdsl_ldsm_x4_trans(vr0, vr1, vr2, vr3, kdsl_smem(tile) + v_row * 16 + v_chunk * 16);
    const u32 vr4 = kdsl_prmt(vr0, vr1, 0x6420u);
    const u32 vr5 = kdsl_prmt(vr2, vr3, 0x6420u);
    const u32 vr6 = kdsl_prmt(vr0, vr1, 0x7531u);
    const u32 vr7 = kdsl_prmt(vr2, vr3, 0x7531u);
    kdsl_stsm_x4(kdsl_smem(transposed) + t_row * 32 + t_chunk * 16, vr4, vr5, vr6, vr7);
    __syncwarp();
    for (int i = lane; i < 16 * 32; i += 32) vt[i] = transposed[i];
}
