using KernelDsl;
using KernelDsl.Launching;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Hopper;

/// <summary>
/// TMA end to end (issue 7's first piece): a tensor map encoded by <see cref="TensorMap.EncodeTiled{T}"/>, passed as a
/// __grid_constant__ parameter, one cp.async.bulk.tensor box completing on an mbarrier. Checks the box byte for byte,
/// and that the parts past the tensor's edge arrive as zeros. Needs sm_90; first passed on the H100 in run 20 (docs/GPU_RESULTS.md).
/// </summary>
public class TmaGpuTests
{
    private const int Size = 256, Box = 64;

    private static readonly KernelModuleDefinition Module = new()
    {
        Name = "Tests.TmaBoxCopy",
        CudaSource = """
            typedef unsigned long long u64;
            typedef unsigned int u32;
            typedef unsigned char u8;
            struct __align__(64) kdsl_tensor_map { u64 opaque[16]; };
            static __device__ __forceinline__ u32 kdsl_smem(const void* p)
            {
                u32 a;
                asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
                return a;
            }
            // One 64 × 64-byte box at (x0, y0) (x innermost) into shared memory by TMA, then out to global.
            extern "C" __global__ void __launch_bounds__(128) tma_box_copy(const __grid_constant__ kdsl_tensor_map map, u8* __restrict__ out, int x0, int y0)
            {
                __shared__ __align__(128) u8 box[64 * 64];
                __shared__ __align__(8) u64 full;
                const u32 bar = kdsl_smem(&full);
                if (threadIdx.x == 0)
                {
                    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" :: "r"(bar) : "memory");
                    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
                }
                __syncthreads();
                if (threadIdx.x == 0)
                {
                    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(bar), "r"(64 * 64) : "memory");
                    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                        :: "r"(kdsl_smem(box)), "l"((u64)&map), "r"(x0), "r"(y0), "r"(bar) : "memory");
                }
                asm volatile("{\n .reg .pred done;\n WAIT:\n mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n @!done bra WAIT;\n}\n" :: "r"(bar), "r"(0) : "memory");
                for (int i = threadIdx.x; i < 64 * 64; i += blockDim.x) out[i] = box[i];
            }
            """,
        EntryPoints = [new KernelEntryPoint("tma_box_copy", 128, 0)],
        Targets = ["sm_90"],
        MinimumSm = 90,
    };

    [Theory]
    [InlineData(64, 128)]    // inside
    [InlineData(224, 224)]   // 32 columns and 32 rows past the edge: zero-filled
    public void A_tma_box_lands_in_shared_memory_byte_for_byte(int x0, int y0)
    {
        using var device = Gpu.OpenOrSkip();
        if (device.ComputeCapability < 90)
        {
            Assert.Skip($"TMA needs sm_90; this is {device.ArchName}.");
        }
        var seed = Environment.TickCount;
        var matrix = new byte[Size * Size];
        new Random(seed).NextBytes(matrix);
        using var stream = device.CreateStream();
        using var source = device.Upload<byte>(matrix);
        using var output = device.Upload<byte>(Enumerable.Repeat((byte)0xA5, Box * Box).ToArray());
        var map = TensorMap.EncodeTiled(source, [Size, Size], [Size], [Box, Box]);

        stream.Launch(Module, "tma_box_copy", Dim3.Of(1), new KernelArguments().AddValue(map).Add(output).Add(x0).Add(y0));
        stream.Synchronize();

        var box = output.ToArray();
        for (var r = 0; r < Box; r++)
        {
            for (var c = 0; c < Box; c++)
            {
                var (row, col) = (y0 + r, x0 + c);
                var expected = row < Size && col < Size ? matrix[row * Size + col] : (byte)0;
                Assert.True(box[r * Box + c] == expected, $"seed {seed}: box[{r}][{c}] = {box[r * Box + c]}, want {expected}");
            }
        }
    }
}
