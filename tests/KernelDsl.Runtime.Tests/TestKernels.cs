namespace KernelDsl.Runtime.Tests;

/// <summary>Small self-contained CUDA sources for NVRTC tests (no toolkit headers exist on CI machines).</summary>
internal static class TestKernels
{
    /// <summary>One int8 tensor-core MMA and one movmatrix transpose, through inline PTX.</summary>
    public const string TensorCoreProbe = """
        extern "C" __global__ void __launch_bounds__(32) tensor_core_probe(const int* a, const int* b, int* c, unsigned* t)
        {
            const int lane = threadIdx.x;
            unsigned a0 = a[lane * 4 + 0], a1 = a[lane * 4 + 1], a2 = a[lane * 4 + 2], a3 = a[lane * 4 + 3];
            unsigned b0 = b[lane * 2 + 0], b1 = b[lane * 2 + 1];
            int d0 = 0, d1 = 0, d2 = 0, d3 = 0;
            asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                         : "+r"(d0), "+r"(d1), "+r"(d2), "+r"(d3)
                         : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
            c[lane * 4 + 0] = d0; c[lane * 4 + 1] = d1; c[lane * 4 + 2] = d2; c[lane * 4 + 3] = d3;
            unsigned transposed;
            asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(transposed) : "r"(a0));
            t[lane] = transposed;
        }
        """;

    /// <summary>
    /// 64 accumulators that all stay live across a loop; capped at 32 registers (-maxrregcount=32) ptxas must spill.
    /// </summary>
    public const string Spiller = """
        extern "C" __global__ void spiller(float* out, const float* a, int n)
        {
            float acc[64];
        #pragma unroll
            for (int i = 0; i < 64; i++) acc[i] = a[i * n + threadIdx.x];
            for (int j = 0; j < n; j++) {
        #pragma unroll
                for (int i = 0; i < 64; i++) acc[i] = acc[i] * acc[(i + 1) & 63] + a[j];
            }
            float sum = 0.0f;
        #pragma unroll
            for (int i = 0; i < 64; i++) sum += acc[i] * (float)i;
            out[threadIdx.x] = sum;
        }
        """;

    /// <summary>Line 3 uses an undeclared name; line 4 lacks a semicolon, which NVRTC reports at the next token (line 5).</summary>
    public const string Broken = """
        extern "C" __global__ void broken(int* out)
        {
            int x = undeclared_thing;
            out[0] = x
        }
        """;
}
