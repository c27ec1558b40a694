using KernelDsl;
using KernelDsl.Launching;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Hopper;

/// <summary>
/// Recipe D on the GPU: the generator's one-warp kernel (snapshot RecipeD.verified.cu of RecipeDEmissionTests) must
/// leave a 32-key × 16-channel int8 V tile transposed, [channel][slot], slot s holding key π(s) — what the simulator
/// predicts. Needs sm_90 (stmatrix); skips elsewhere.
/// </summary>
public class RecipeDGpuTests
{
    private static readonly int[] Pi = Enumerable.Range(0, 32)
        .Select(s => (s & 16) + new[] { 2 * ((s & 15) >> 2), 2 * ((s & 15) >> 2) + 1, 8 + 2 * ((s & 15) >> 2), 9 + 2 * ((s & 15) >> 2) }[s & 3])
        .ToArray();

    private static readonly KernelModuleDefinition Module = new()
    {
        Name = "Tests.RecipeD",
        CudaSource = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Hopper", "RecipeD.cu")),
        EntryPoints = [new KernelEntryPoint("kdsl_recipe_d", 32, 0)],
        Targets = ["sm_90"],
        MinimumSm = 90,
    };

    [Theory]
    [InlineData(0x00)]
    [InlineData(0xFF)]
    public void Stmatrix_leaves_V_transposed_in_pi_key_order(int poison)
    {
        using var device = Gpu.OpenOrSkip();
        if (device.ComputeCapability < 90)
        {
            Assert.Skip($"stmatrix needs sm_90; this is {device.ArchName}.");
        }
        var seed = Environment.TickCount;
        var v = new byte[32 * 16];
        new Random(seed).NextBytes(v);
        using var stream = device.CreateStream();
        using var dv = device.Upload<byte>(v);
        // Two poisons: a byte the kernel never wrote would keep one of them and fail at least one run.
        using var dvt = device.Upload<byte>(Enumerable.Repeat((byte)poison, 16 * 32).ToArray());

        stream.Launch(Module, "kdsl_recipe_d", Dim3.Of(1), new KernelArguments().Add(dv).Add(dvt));
        stream.Synchronize();

        var vt = dvt.ToArray();
        for (var channel = 0; channel < 16; channel++)
        {
            for (var slot = 0; slot < 32; slot++)
            {
                Assert.True(vt[channel * 32 + slot] == v[Pi[slot] * 16 + channel],
                    $"seed {seed}: Vt[{channel}][{slot}] = {vt[channel * 32 + slot]}, want V[{Pi[slot]}][{channel}] = {v[Pi[slot] * 16 + channel]}");
            }
        }
    }
}
