using System.Text.Json;
using KernelDsl;
using KernelDsl.Attention;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.IO;
using KernelDsl.Launching;

namespace CliTests;

/// <summary>
/// What the commands claim is true: the CPU fallback serves what the GPU path serves and names the kernel it models,
/// <c>kdsl compile</c>'s exit code and last lines match what happened, and <c>kdsl list</c> has a stable form.
/// </summary>
[Collection(CliCollection.Name)]
public class CliHonestyTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("kdsl-honest-").FullName;

    public void Dispose()
    {
        Directory.Delete(_folder, recursive: true);
    }

    private string PathOf(string name) => Path.Combine(_folder, name);

    private string[] Inputs(int headDim, params string[] extra)
    {
        var random = new Random(42);
        foreach (var name in new[] { "q", "k", "v" })
        {
            NpyFile.Write(PathOf(name + ".npy"), Enumerable.Range(0, 2 * 40 * headDim).Select(_ => (Half)(random.NextDouble() * 2 - 1)).ToArray(), 1, 2, 40, headDim);
        }
        return ["attention", "--q", PathOf("q.npy"), "--k", PathOf("k.npy"), "--v", PathOf("v.npy"), "--out", PathOf("o.npy"), .. extra];
    }

    private static void SkipOnAGpu()
    {
        if (CudaDevice.TryOpen(0, out var device, out _))
        {
            device.Dispose();
            Assert.Skip("A GPU is present, so kdsl attention runs there; these tests are about its CPU fallback.");
        }
    }

    [Theory]
    [InlineData(64, new string[0], "Int8AttentionD64TransPrmt", "the exact int8 algorithm")]
    [InlineData(128, new[] { "--v-strategy", "Pretransposed", "--causal" }, "Int8AttentionD128Pretransposed.Causal", "the exact int8 algorithm")]
    [InlineData(128, new[] { "--pv", "Float16" }, "Int8AttentionD128F16PV", "16-bit P·V")]
    public void The_cpu_fallback_names_the_declared_kernel_the_library_selects_and_what_it_computes(int headDim, string[] extra, string kernel, string algorithm)
    {
        SkipOnAGpu();
        var run = CliRunner.Run(Inputs(headDim, extra));
        Assert.True(run.Code == 0, run.ToString());
        Assert.Contains($"CPU reference of {kernel} (", run.Output);
        Assert.Contains(algorithm, run.Output);
        if (extra.Contains("Float16"))
        {
            Assert.DoesNotContain("exact int8", run.Output);
        }
        Assert.Matches(@"relative L2 [0-9]\.[0-9]+E-0[0-9]", run.Output);
    }

    [Fact]
    public void Tile_short_names_and_descriptions_select_the_same_kernel()
    {
        SkipOnAGpu();
        var description = Int8Attention.TilesFor(Element.F16, 128, new AttentionOptions())[1];
        var shortName = Int8Attention.Kernels.First(k => k.Tile == description).TileName;
        Assert.Matches("^[a-z0-9-]+$", shortName);
        var byName = CliRunner.Run(Inputs(128, "--tile", shortName, "--no-reference"));
        Assert.True(byName.Code == 0, byName.ToString());
        var first = File.ReadAllBytes(PathOf("o.npy"));
        var byDescription = CliRunner.Run(Inputs(128, "--tile", description, "--no-reference"));
        Assert.True(byDescription.Code == 0, byDescription.ToString());
        Assert.Equal(first, File.ReadAllBytes(PathOf("o.npy")));
        Assert.Contains($"tile {shortName})", byName.Output);
    }

    [Fact]
    public void Autotune_without_a_gpu_says_it_was_skipped_and_names_the_default_kernel()
    {
        SkipOnAGpu();
        var run = CliRunner.Run(Inputs(128, "--autotune", "--no-reference"));
        Assert.True(run.Code == 0, run.ToString());
        // Said on one line of its own, so that no one takes the run for a tuned one.
        Assert.Contains("--autotune skipped: it times kernels on a GPU; this runs the default kernel.\n", run.Output.ReplaceLineEndings("\n"));
        Assert.Contains("CPU reference of Int8AttentionD128TransPrmt", run.Output);
    }

    [Fact]
    public void V_strategy_help_names_every_strategy()
    {
        var run = CliRunner.Run("attention", "--help");
        Assert.Equal(0, run.Code);
        var help = string.Join(' ', run.Output.Split('\n').Select(l => l.Trim()));
        foreach (var strategy in Enum.GetNames<VStrategy>())
        {
            Assert.Contains(strategy, help);
        }
    }

    [Fact]
    public void Tile_names_are_short_ascii_and_name_every_part_of_the_tile()
    {
        Assert.Equal("128x64-w8-s2", Int8AttentionD128TransPrmt.TileName);
        Assert.Equal("64x64-w4-s2-b2", Int8AttentionD128TransPrmtBlockM64.TileName);
        Assert.Equal("wgmma-s3", Int8AttentionD128WgmmaStages3.TileName);
        Assert.Equal("wgmma-pingpong-s2", Int8AttentionD128WgmmaPingpong.TileName);
        Assert.Equal("wgmma-s3-qrow", Int8AttentionD128WgmmaFusedQ.TileName);  // Q quantized per row in the kernel
    }

    [Fact]
    public void Every_declared_tile_has_a_short_name_of_its_own()
    {
        var tiles = Int8Attention.Kernels.Select(k => (k.Tile, k.TileName)).Distinct().ToList();
        Assert.Equal(tiles.Select(t => t.Tile).Distinct().Count(), tiles.Count);           // one name per tile
        Assert.Equal(tiles.Count, tiles.Select(t => t.TileName).Distinct().Count());        // and distinct tiles, distinct names
        Assert.All(tiles, t => Assert.Matches("^(wgmma|[0-9]+x[0-9]+-w[0-9]+)(-[a-z0-9]+)*-s[0-9]+(-b[0-9]+)?(-qrow)?$", t.TileName));
    }

    [Fact]
    public void List_plain_is_one_tab_separated_line_per_variant_and_json_parses()
    {
        var plain = CliRunner.Run("list", "--format", "plain");
        Assert.Equal(0, plain.Code);
        var lines = plain.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(DeclaredVariants.All.Count + 1, lines.Length);
        Assert.All(lines, l => Assert.Equal(9, l.Split('\t').Length));
        Assert.Contains(lines, l => l.StartsWith("KernelDsl.Attention.FlashAttention.Int8AttentionD128TransPrmt\t", StringComparison.Ordinal) && l.Contains("\t128x64-w8-s2\t"));

        // Not a terminal (captured, like a pipe): plain, whatever the width.
        Assert.Equal(plain.Output, CliRunner.Run("list").Output);

        var json = CliRunner.Run("list", "--format", "json");
        Assert.Equal(0, json.Code);
        var variants = JsonDocument.Parse(json.Output).RootElement.EnumerateArray().ToList();
        Assert.Equal(DeclaredVariants.All.Count, variants.Count);
        var wgmma = variants.Single(v => v.GetProperty("name").GetString() == "KernelDsl.Attention.FlashAttention.Int8AttentionD128WgmmaStages3");
        Assert.Equal("wgmma-s3", wgmma.GetProperty("tile").GetString());
        Assert.Equal("128×128 / wgmma 1+2 warpgroups / 3 stages", wgmma.GetProperty("tileDescription").GetString());

        var table = CliRunner.Run("list", "--format", "table");
        Assert.Equal(0, table.Code);
        Assert.Contains($"{DeclaredVariants.All.Count} variants.", table.Output);
    }

    [Theory]
    [InlineData(11, 8, "sm_90a", true)]
    [InlineData(11, 8, "sm_90", false)]
    [InlineData(12, 0, "sm_90a", false)]
    [InlineData(12, 8, "sm_100f", true)]
    [InlineData(13, 0, "sm_100f", false)]
    public void An_nvrtc_version_knows_the_targets_it_cannot_build(int major, int minor, string arch, bool cannot) =>
        Assert.Equal(cannot, new NvrtcVersion(major, minor).CannotTarget(arch) is not null);

    [Fact]
    public void Compile_skips_with_the_reason_what_this_nvrtc_cannot_build_and_exits_0()
    {
        var nvrtc = NvrtcAvailability.GetOrSkip(Assert.Skip);
        var run = CliRunner.Run("compile", "--only", "Int8AttentionD64Wgmma.Causal");
        Assert.True(run.Code == 0, run.ToString());
        if (nvrtc.Version.CannotTarget("sm_90a") is { } reason)
        {
            Assert.Contains("skipped", run.Output);
            Assert.Contains(reason, run.Output);
            Assert.DoesNotContain("No kernel spills.", run.Output);
            Assert.Contains("No kernel compiled", run.Output);
        }
        else
        {
            Assert.Contains("No kernel spills.", run.Output);
        }
    }

    [Fact]
    public void Compile_reports_kernels_without_the_unused_helper_warnings()
    {
        NvrtcAvailability.GetOrSkip(Assert.Skip);
        var run = CliRunner.Run("compile", "--only", "QuantizeQBlock128D64Bf16", "--arch", "sm_80");
        Assert.True(run.Code == 0, run.ToString());
        Assert.Contains("kdsl_KernelDsl_Attention_Quantization_QuantizeQBlock128D64Bf16", run.Output);
        Assert.DoesNotContain("warning #177", run.Output);
        Assert.DoesNotContain("declared but never referenced", run.Output);
        Assert.Contains("No kernel spills.", run.Output);
    }

    [Fact]
    public void Compile_exits_non_zero_when_a_kernel_does_not_compile()
    {
        NvrtcAvailability.GetOrSkip(Assert.Skip);
        var overrides = Directory.CreateDirectory(PathOf("overrides")).FullName;
        const string Variant = "KernelDsl.Attention.Quantization.QuantizeQBlock128D64Bf16";
        File.WriteAllText(Path.Combine(overrides, Variant + ".cu"), "extern \"C\" __global__ void broken() { this is not CUDA; }\n");
        var previous = Environment.GetEnvironmentVariable(KernelSourceOverride.DirectoryVariable);
        Environment.SetEnvironmentVariable(KernelSourceOverride.DirectoryVariable, overrides);
        try
        {
            var run = CliRunner.Run("compile", "--only", "QuantizeQBlock128D64Bf16", "--arch", "sm_80");
            Assert.True(run.Code == 1, run.ToString());
            Assert.Contains("failed", run.Output);
            Assert.Contains("1 variant targets failed", run.Output);
            Assert.DoesNotContain("No kernel spills.", run.Output);
            Assert.DoesNotContain("   at ", run.All);
        }
        finally
        {
            Environment.SetEnvironmentVariable(KernelSourceOverride.DirectoryVariable, previous);
        }
    }

    /// <summary>A console whose output breaks (a closed pipe, a full disk).</summary>
    private sealed class BrokenWriter : StringWriter
    {
        public override void Write(string? value) => throw new IOException("No space left on device");
        public override void Write(char value) => throw new IOException("No space left on device");
        public override void WriteLine(string? value) => throw new IOException("No space left on device");
    }

    [Fact]
    public void An_unexpected_failure_is_one_short_line_with_exit_code_1_and_the_stack_only_under_verbose()
    {
        var errors = new StringWriter();
        var (previous, previousErrors) = (Spectre.Console.AnsiConsole.Console, KernelDsl.Cli.CliApp.Errors);
        Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings { Out = new Spectre.Console.AnsiConsoleOutput(new BrokenWriter()) });
        KernelDsl.Cli.CliApp.Errors = errors;
        try
        {
            Assert.Equal(1, KernelDsl.Cli.CliApp.Run("cuda", "Int8AttentionD128TransPrmt"));
            var line = Assert.Single(errors.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Equal("kdsl failed: IOException: No space left on device (--verbose shows the details.)", line);

            errors.GetStringBuilder().Clear();
            Assert.Equal(1, KernelDsl.Cli.CliApp.Run("cuda", "Int8AttentionD128TransPrmt", "--verbose"));
            Assert.Contains("   at ", errors.ToString());
        }
        finally
        {
            (Spectre.Console.AnsiConsole.Console, KernelDsl.Cli.CliApp.Errors) = (previous, previousErrors);
        }
    }
}
