using KernelDsl.Attention.IO;
using KernelDsl.Attention.Reference;
using KernelDsl.Cli;

namespace CliTests;

/// <summary>The CLI end to end, as a user runs it: commands parsed from arguments, files in and out.</summary>
public class CliTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("kdsl-cli-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static int Run(params string[] args) => CliApp.Build().Parse(args).Invoke();

    private string PathOf(string name) => Path.Combine(_folder, name);

    [Fact]
    public void List_and_cuda_show_the_declared_variants()
    {
        Assert.Equal(0, Run("list"));
        Assert.Equal(0, Run("cuda", "Int8AttentionD128Movmatrix"));
        Assert.NotEqual(0, Run("cuda", "NoSuchVariant"));
    }

    [Theory]
    [InlineData("BHSD", false)]
    [InlineData("BSHD", true)]
    public void Attention_on_npy_files_writes_o_in_the_same_layout_close_to_float64(string layout, bool causal)
    {
        var random = new Random(Environment.TickCount);
        var shape = new AttentionShape(1, 2, 1, 40, 70, 64, causal, layout: layout == "BSHD" ? TensorLayout.BSHD : TensorLayout.BHSD);
        Half[] Gaussian(int n) => Enumerable.Range(0, n).Select(_ => (Half)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))).ToArray();
        var (q, k, v) = (Gaussian(shape.QElements), Gaussian(shape.KvElements), Gaussian(shape.KvElements));
        int[] Shape(int heads, int tokens) => layout == "BSHD" ? [1, tokens, heads, 64] : [1, heads, tokens, 64];
        NpyFile.Write(PathOf("q.npy"), q, Shape(2, 40));
        NpyFile.Write(PathOf("k.npy"), k, Shape(1, 70));
        NpyFile.Write(PathOf("v.npy"), v, Shape(1, 70));
        var args = new List<string> { "attention", "--q", PathOf("q.npy"), "--k", PathOf("k.npy"), "--v", PathOf("v.npy"), "--out", PathOf("o.npy"), "--layout", layout };
        if (causal)
        {
            args.Add("--causal");
        }
        Assert.Equal(0, Run([.. args]));

        var o = NpyFile.ReadHalf(PathOf("o.npy"));
        Assert.Equal(Shape(2, 40), o.Shape);
        var error = ErrorMetrics.Compare(o.Data.Select(x => (double)x).ToArray(), Float64Attention.Forward(shape, q, k, v).Output);
        Assert.True(error.RelativeL2 < 3e-2 && error.Cosine > 0.999, $"relative L2 {error.RelativeL2}, cosine {error.Cosine}");
    }

    [Theory]
    [InlineData("--head-dim", "96")]
    [InlineData("--seq", "3000")]
    [InlineData("--seq", "0")]
    [InlineData("--only", "NoSuchVariant")]
    public void Bench_refuses_a_shape_off_the_grid_or_an_undeclared_variant_before_looking_for_a_gpu(string option, string value)
    {
        var result = CliApp.Build().Parse(["bench", option, value]);
        var error = Assert.Single(result.Errors);
        Assert.Contains(option, error.Message);
        Assert.NotEqual(0, result.Invoke());
    }

    [Fact]
    public void Attention_refuses_an_undeclared_tile_before_any_work()
    {
        var random = new Random(Environment.TickCount);
        var data = Enumerable.Range(0, 1 * 2 * 16 * 64).Select(_ => (Half)(random.NextDouble() - 0.5)).ToArray();
        foreach (var name in new[] { "q", "k", "v" })
        {
            NpyFile.Write(PathOf(name + ".npy"), data, 1, 2, 16, 64);
        }
        Assert.NotEqual(0, Run("attention", "--q", PathOf("q.npy"), "--k", PathOf("k.npy"), "--v", PathOf("v.npy"), "--out", PathOf("o.npy"), "--tile", "64×64 / 4 warps"));
        Assert.False(File.Exists(PathOf("o.npy")));
        Assert.Equal(0, Run("attention", "--q", PathOf("q.npy"), "--k", PathOf("k.npy"), "--v", PathOf("v.npy"), "--out", PathOf("o.npy"), "--no-reference",
            "--tile", "128×64 / 8 warps / 2 stages / 2 blocks/SM"));
        Assert.True(File.Exists(PathOf("o.npy")));
    }

    [Fact]
    public void Attention_refuses_a_tensor_that_is_not_4d()
    {
        NpyFile.Write(PathOf("flat.npy"), new Half[64], 64);
        Assert.NotEqual(0, Run("attention", "--q", PathOf("flat.npy"), "--k", PathOf("flat.npy"), "--v", PathOf("flat.npy"), "--out", PathOf("o.npy")));
        Assert.False(File.Exists(PathOf("o.npy")));
    }

    [Fact]
    public void Plot_draws_one_png_per_head_dim_and_mask()
    {
        File.WriteAllLines(PathOf("ours.csv"),
        [
            "variant,head_dim,seq,causal,batch,heads,kernel_ms,end_to_end_ms,kernel_tops,end_to_end_tops",
            "u8-PV TransPrmt,128,1024,False,16,16,0.5,0.6,228.0,167.0",
            "u8-PV TransPrmt,128,4096,False,4,16,1.9,2.1,273.0,248.0",
            "u8-PV TransPrmt,128,4096,True,4,16,1.1,1.3,232.0,190.0",
        ]);
        File.WriteAllLines(PathOf("sdpa.csv"),
        [
            "backend,head_dim,seq,causal,ms,tops",
            "flash,128,1024,False,0.433,317.8",
            "flash,128,4096,False,1.812,303.4",
            "flash,128,4096,True,0.931,295.2",
        ]);
        Assert.Equal(0, Run("plot", "--ours", PathOf("ours.csv"), "--sdpa", PathOf("sdpa.csv"), "--out", PathOf("attention")));
        foreach (var file in new[] { "attention-d128.png", "attention-d128-causal.png" })
        {
            var bytes = File.ReadAllBytes(PathOf(file));
            Assert.True(bytes.Length > 1000);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
        }
    }

    [Fact]
    public void Plot_series_fold_autotuned_winners_into_one_and_leave_further_tiles_out()
    {
        File.WriteAllLines(PathOf("ours.csv"),
        [
            "variant,head_dim,seq,causal,batch,heads,kernel_ms,end_to_end_ms,kernel_tops,end_to_end_tops",
            "u8-PV Pretransposed,128,1024,False,16,16,0.5,0.6,275.0,173.0",
            "u8-PV Pretransposed [128×64 / 8 warps / 3 stages / 1 block/SM],128,1024,False,16,16,0.5,0.6,279.0,175.0",
            "u8-PV autotuned: Pretransposed [128×64 / 8 warps / 3 stages / 1 block/SM],128,1024,False,16,16,0.5,0.6,279.0,175.0",
            "u8-PV autotuned: TransPrmt [128×64 / 8 warps / 2 stages / 1 block/SM],128,4096,False,4,16,1.9,2.1,336.0,292.0",
        ]);
        var series = KernelDsl.Cli.Commands.PlotCommand.ReadOurs(PathOf("ours.csv")).GroupBy(p => p.Series).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new Dictionary<string, int> { ["u8-PV Pretransposed"] = 1, ["u8-PV autotuned"] = 2 }, series);
    }
}
