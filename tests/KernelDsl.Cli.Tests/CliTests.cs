using KernelDsl.Attention.IO;
using KernelDsl.Attention.Reference;
using KernelDsl.Cli;

namespace CliTests;

/// <summary>The CLI end to end, as a user runs it: commands parsed from arguments, files in and out.</summary>
[Collection(CliCollection.Name)]
public class CliTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("kdsl-cli-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static int Run(params string[] args) => CliRunner.Run(args).Code;

    private string PathOf(string name) => Path.Combine(_folder, name);

    private static (int Code, string Output) RunCapturing(params string[] args)
    {
        var run = CliRunner.Run(args);
        return (run.Code, run.All);
    }

    /// <summary>N(0, 1) samples (Box–Muller) rounded to f16.</summary>
    private static Half[] Gaussian(Random random, int n) =>
        Enumerable.Range(0, n).Select(_ => (Half)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))).ToArray();

    /// <summary>Gaussian f16 q, k, v [1, 2, tokens, headDim] (BHSD) in the test folder; the command line's file arguments.</summary>
    private string[] WriteInputs(int tokensQ, int tokensKv, out AttentionShape shape, out (Half[] Q, Half[] K, Half[] V) data, int headDim = 128)
    {
        var random = new Random(1234);
        shape = new AttentionShape(1, 2, 2, tokensQ, tokensKv, headDim);
        data = (Gaussian(random, shape.QElements), Gaussian(random, shape.KvElements), Gaussian(random, shape.KvElements));
        NpyFile.Write(PathOf("q.npy"), data.Q, 1, 2, tokensQ, headDim);
        NpyFile.Write(PathOf("k.npy"), data.K, 1, 2, tokensKv, headDim);
        NpyFile.Write(PathOf("v.npy"), data.V, 1, 2, tokensKv, headDim);
        return ["attention", "--q", PathOf("q.npy"), "--k", PathOf("k.npy"), "--v", PathOf("v.npy"), "--out", PathOf("o.npy")];
    }

    private static double ReportedRelativeL2(string output)
    {
        var match = System.Text.RegularExpressions.Regex.Match(output, @"relative L2 ([0-9.E+-]+)");
        Assert.True(match.Success, output);
        return double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void List_shows_the_attention_kernels_modifiers_and_their_parameters_one_line_each_when_piped()
    {
        var (code, output) = RunCapturing("list");
        Assert.Equal(0, code);
        var line = Assert.Single(output.Split('\n'), l => l.StartsWith("KernelDsl.Attention.FlashAttention.SlidingWindow.D128\t", StringComparison.Ordinal));
        Assert.Contains("mask SlidingWindow.Visible", line);
        Assert.Contains("window: int", line);
        Assert.Contains("slopes: float[]", Assert.Single(output.Split('\n'), l => l.StartsWith("KernelDsl.Attention.FlashAttention.Alibi.D128\t", StringComparison.Ordinal)));
    }

    [Fact]
    public void Attention_runs_a_variant_with_its_modifier_arguments_on_the_cpu_reference_close_to_float64()
    {
        var args = WriteInputs(200, 200, out var shape, out var data);
        var (code, output) = RunCapturing([.. args, "--variant", "SlidingWindow.D128", "--arg", "window=64"]);
        Assert.True(code == 0, output);
        Assert.Contains("SlidingWindow.D128", output);
        Assert.True(ReportedRelativeL2(output) < 3e-2, output);

        // The file holds the windowed attention, not the dense one.
        var o = NpyFile.ReadHalf(PathOf("o.npy")).Data.Select(x => (double)x).ToArray();
        var window = new AttentionModifiers(Mask: (_, _, q, k) => k <= q && q - k < 64);
        Assert.True(ErrorMetrics.Compare(o, Float64Attention.Forward(shape, data.Q, data.K, data.V, modifiers: window).Output).RelativeL2 < 3e-2);
        Assert.True(ErrorMetrics.Compare(o, Float64Attention.Forward(shape, data.Q, data.K, data.V).Output).RelativeL2 > 0.1);
    }

    [Fact]
    public void Attention_takes_a_family_name_and_runs_it_with_the_same_modifiers()
    {
        var args = WriteInputs(200, 200, out var shape, out var data);
        var (code, output) = RunCapturing([.. args, "--variant", "SlidingWindow", "--arg", "window=64"]);
        Assert.True(code == 0, output);
        // On a GPU the fastest form runs and is named; without one, the CPU reference says which forms it stands for.
        Assert.True(output.Contains("forms", StringComparison.Ordinal) || output.Contains("the only form", StringComparison.Ordinal), output);
        Assert.True(ReportedRelativeL2(output) < 3e-2, output);
        var o = NpyFile.ReadHalf(PathOf("o.npy")).Data.Select(x => (double)x).ToArray();
        var window = new AttentionModifiers(Mask: (_, _, q, k) => k <= q && q - k < 64);
        Assert.True(ErrorMetrics.Compare(o, Float64Attention.Forward(shape, data.Q, data.K, data.V, modifiers: window).Output).RelativeL2 < 3e-2);

        // A family's arguments are its methods' (checked as a kernel's are), and a family with no form for the head dim is refused by name.
        (code, output) = RunCapturing([.. args, "--variant", "SlidingWindow", "--arg", "cap=3"]);
        Assert.Equal(2, code);
        Assert.Contains("--arg cap: family SlidingWindow has no modifier parameter 'cap'", string.Join(' ', output.Split(default(char[]), StringSplitOptions.RemoveEmptyEntries)));
        (code, output) = RunCapturing([.. args, "--variant", "SlidingWindow"]);
        Assert.Equal(2, code);
        Assert.Contains("Family SlidingWindow needs --arg window=VALUE (int)", string.Join(' ', output.Split(default(char[]), StringSplitOptions.RemoveEmptyEntries)));
        (code, output) = RunCapturing([.. args, "--variant", "SlidingWindw", "--arg", "window=64"]);
        Assert.Equal(2, code);
        // Redirected output is not wrapped: the error is one line, with a dozen similar names at most.
        var unknown = Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("names no attention kernel or family", StringComparison.Ordinal));
        Assert.Contains("names no attention kernel or family. Families (the fastest form runs): CausalMask, SlidingWindow,", unknown);
        Assert.EndsWith("`kdsl list` shows every kernel.", unknown.TrimEnd());
        Assert.True(unknown.Length < 600, unknown);
        // A [Positive] argument out of its rule is a usage error naming it, before anything runs.
        (code, output) = RunCapturing([.. args, "--variant", "Softcap", "--arg", "cap=0"]);
        Assert.Equal(2, code);
        Assert.Contains("--arg cap=0: modifier argument 'cap' of family Softcap must be positive and finite (its modifier declares it [Positive]).", output);
        var d64 = WriteInputs(40, 40, out _, out _, headDim: 64);
        (code, output) = RunCapturing([.. d64, "--variant", "SlidingWindow", "--arg", "window=8"]);
        Assert.Equal(2, code);
        Assert.Contains("--variant SlidingWindow has no f16 form for D = 64", output);
    }

    [Fact]
    public void Attention_binds_array_arguments_from_npy_files_and_float_scalars()
    {
        var args = WriteInputs(150, 150, out _, out _);
        NpyFile.Write(PathOf("documents.npy"), Enumerable.Range(0, 150).Select(i => i / 50).ToArray(), 150);
        var (code, output) = RunCapturing([.. args, "--variant", "DocumentMask.D128", "--arg", "documents=@" + PathOf("documents.npy")]);
        Assert.True(code == 0, output);
        Assert.True(ReportedRelativeL2(output) < 3e-2, output);

        NpyFile.Write(PathOf("slopes.npy"), new[] { 0.5f, 0.25f }, 2);
        (code, output) = RunCapturing([.. args, "--variant", "Alibi.D128", "--arg", "slopes=@" + PathOf("slopes.npy")]);
        Assert.True(code == 0, output);
        Assert.True(ReportedRelativeL2(output) < 3e-2, output);

        (code, output) = RunCapturing([.. args, "--variant", "Softcap.D128F16PV", "--arg", "cap=2.5"]);
        Assert.True(code == 0, output);
        Assert.True(ReportedRelativeL2(output) < 3e-2, output);
    }

    [Fact]
    public void A_mask_that_hides_every_key_of_some_rows_gives_them_zero()
    {
        var args = WriteInputs(100, 100, out _, out _);
        var (code, output) = RunCapturing([.. args, "--variant", "CausalMask.D128", "--arg", "offset=-10"]);
        Assert.True(code == 0, output);
        Assert.True(ReportedRelativeL2(output) < 3e-2, output);
        Assert.Contains("20 of 200 rows see no key (O = 0 there).", output);
        var o = NpyFile.ReadHalf(PathOf("o.npy")).Data;
        Assert.All(o.AsSpan(0, 10 * 128).ToArray(), x => Assert.Equal(0.0, (double)x));
    }

    [Theory]
    [InlineData("-5")]
    [InlineData("0")]
    public void A_mask_that_hides_every_key_of_every_row_is_said_so_not_scored(string window)
    {
        var args = WriteInputs(64, 64, out _, out _);
        var run = CliRunner.Run([.. args, "--variant", "SlidingWindow.D128", "--arg", "window=" + window]);
        Assert.True(run.Code == 0, run.ToString());
        Assert.Contains("The mask SlidingWindow.Visible hides every key of every row: O = 0, LSE = −∞; the output is all zeros", run.Output);
        Assert.DoesNotContain("relative L2", run.Output);
        Assert.DoesNotContain("cosine", run.Output);
        Assert.All(NpyFile.ReadHalf(PathOf("o.npy")).Data, x => Assert.Equal(0.0, (double)x));
    }

    [Theory]
    [InlineData("NoSuchVariant", new string[0], "NoSuchVariant")]
    [InlineData("D128", new string[0], "ambiguous")]
    [InlineData("SlidingWindow.D128", new string[0], "--arg window=")]
    [InlineData("SlidingWindow.D128", new[] { "window=64", "bogus=1" }, "bogus")]
    [InlineData("SlidingWindow.D128", new[] { "window=abc" }, "'abc' is not an int")]
    [InlineData("SlidingWindow.D128", new[] { "window=1.5" }, "window")]
    [InlineData("SlidingWindow.D128", new[] { "window" }, "name=value")]
    [InlineData("Softcap.D128", new[] { "cap=NaN" }, "cap")]
    [InlineData("DocumentMask.D128", new[] { "documents=3" }, "documents=@file.npy")]
    [InlineData("DocumentMask.D128", new[] { "documents=@nothing-here.npy" }, "nothing-here.npy")]
    [InlineData("SlidingWindow.D128Bf16", new[] { "window=64" }, "BF16")]
    public void Attention_refuses_an_unknown_variant_or_bad_arguments_with_exit_code_2_before_any_work(string variant, string[] arguments, string named)
    {
        var args = WriteInputs(16, 16, out _, out _).Concat(["--variant", variant]).Concat(arguments.SelectMany(a => new[] { "--arg", a })).ToArray();
        var (code, output) = RunCapturing(args);
        Assert.Equal(2, code);
        Assert.Contains(named, output);
        Assert.DoesNotContain("   at ", output);
        Assert.False(File.Exists(PathOf("o.npy")));
    }

    [Fact]
    public void Attention_refuses_modes_the_variant_fixes_arguments_without_a_variant_and_an_array_too_short()
    {
        var args = WriteInputs(64, 64, out _, out _);
        foreach (var extra in new[] { new[] { "--causal" }, ["--pv", "Float16"], ["--v-strategy", "Movmatrix"], ["--tile", "128×64 / 8 warps / 2 stages / 2 blocks/SM"] })
        {
            var (code, output) = RunCapturing([.. args, "--variant", "SlidingWindow.D128", "--arg", "window=8", .. extra]);
            Assert.Equal(2, code);
            Assert.Contains(extra[0], output);
        }
        var (plainCode, plainOutput) = RunCapturing([.. args, "--arg", "window=8"]);
        Assert.Equal(2, plainCode);
        Assert.Contains("--variant", plainOutput);

        NpyFile.Write(PathOf("short.npy"), new int[10], 10);
        var (shortCode, shortOutput) = RunCapturing([.. args, "--variant", "DocumentMask.D128", "--arg", "documents=@" + PathOf("short.npy")]);
        Assert.Equal(2, shortCode);
        Assert.Contains("documents", shortOutput);
        Assert.False(File.Exists(PathOf("o.npy")));
    }

    [Fact]
    public void Modifier_methods_with_span_parameters_bind_through_expression_trees()
    {
        var method = KernelVariants.FindMethod("KernelDsl.Attention.FlashAttention.DocumentMask.SameDocument");
        var mask = KernelVariants.Bind<MaskModifier>(method, new Dictionary<string, object> { ["documents"] = new[] { 0, 0, 1, 1 } }, typeof(int), typeof(int), typeof(int), typeof(int));
        Assert.True(mask(0, 0, 1, 0));
        Assert.False(mask(0, 0, 2, 1));
        Assert.False(mask(0, 0, 0, 1));
        var bias = KernelVariants.Bind<ScoreModifier>(KernelVariants.FindMethod("KernelDsl.Attention.FlashAttention.Alibi.Bias"),
            new Dictionary<string, object> { ["slopes"] = new[] { 0.5f, 2f } }, typeof(float), typeof(int), typeof(int), typeof(int), typeof(int));
        Assert.Equal(1f - 2f * 3, bias(1f, 0, 1, 5, 2));
    }

    [Fact]
    public void List_and_cuda_show_the_declared_variants()
    {
        Assert.Equal(0, Run("list"));
        Assert.Equal(0, Run("cuda", "Int8AttentionD128Movmatrix"));
        Assert.NotEqual(0, Run("cuda", "NoSuchVariant"));
    }

    [Fact]
    public void Cuda_resolves_a_name_as_attention_variant_does_a_unique_suffix_or_an_ambiguity_error()
    {
        var (code, output) = RunCapturing("cuda", "SlidingWindow.D128");
        Assert.True(code == 0, output);
        Assert.Contains("from KernelDsl.Attention.FlashAttention.SlidingWindow.D128 (", output);

        // The same suffix, the same refusal: one lookup for both commands.
        var cuda = CliRunner.Run("cuda", "D128");
        var attention = CliRunner.Run([.. WriteInputs(16, 16, out _, out _), "--variant", "D128"]);
        Assert.Equal((2, 2), (cuda.Code, attention.Code));
        Assert.Equal(attention.ErrorLines.Single().Replace("--variant", "variant").Replace("kernels", "variants"), cuda.ErrorLines.Single());
    }

    [Theory]
    [InlineData("BHSD", false)]
    [InlineData("BSHD", true)]
    public void Attention_on_npy_files_writes_o_in_the_same_layout_close_to_float64(string layout, bool causal)
    {
        var random = new Random(Environment.TickCount);
        var shape = new AttentionShape(1, 2, 1, 40, 70, 64, causal, layout: layout == "BSHD" ? TensorLayout.BSHD : TensorLayout.BHSD);
        var (q, k, v) = (Gaussian(random, shape.QElements), Gaussian(random, shape.KvElements), Gaussian(random, shape.KvElements));
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
        var error = Assert.Single(CliApp.Build().Parse(["bench", option, value]).Errors);
        Assert.Contains(option, error.Message);
        Assert.Equal(2, Run("bench", option, value));
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
