using KernelDsl.Cli;
using KernelDsl.Cli.Commands;

namespace CliTests;

/// <summary><c>kdsl bench --decode</c> without a GPU: what it refuses before looking for one, and the bytes it counts.</summary>
[Collection(CliCollection.Name)]
public class BenchDecodeTests
{
    [Theory]
    [InlineData("--variants")]
    [InlineData("--quick")]
    [InlineData("--head-dim", "128")]
    [InlineData("--seq", "4096")]
    [InlineData("--only", "Wgmma")]
    public void Decode_refuses_an_option_of_the_other_grids_naming_both(string option, string? value = null)
    {
        string[] args = value is null ? ["bench", "--decode", option] : ["bench", "--decode", option, value];
        var error = Assert.Single(CliApp.Build().Parse(args).Errors);
        Assert.Contains("--decode", error.Message);
        Assert.Contains(option, error.Message);
        var run = CliRunner.Run(args);
        Assert.True(run.Code == 2, run.ToString());
        var line = Assert.Single(run.ErrorLines);
        Assert.Contains($"--decode and {option} cannot be used together", line);
        Assert.DoesNotContain("   at ", run.All);
    }

    [Fact]
    public void Kdsl_compiles_every_method_fully_optimized_so_bench_times_the_host_path_a_server_runs()
    {
        // With tiering, the decode call's host path ran unoptimized code through the whole bench (PERF_NOTES §17).
        using var config = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "kdsl.runtimeconfig.json")));
        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        Assert.False(properties.GetProperty("System.Runtime.TieredCompilation").GetBoolean());
    }

    [Fact]
    public void Decode_alone_with_csv_and_the_other_grids_without_it_parse()
    {
        Assert.Empty(CliApp.Build().Parse(["bench", "--decode"]).Errors);
        Assert.Empty(CliApp.Build().Parse(["bench", "--decode", "--csv", "decode.csv"]).Errors);
        Assert.Empty(CliApp.Build().Parse(["bench", "--variants", "--seq", "4096"]).Errors);
        Assert.Empty(CliApp.Build().Parse(["bench", "--quick", "--head-dim", "128", "--only", "Wgmma"]).Errors);
        Assert.Empty(CliApp.Build().Parse(["bench", "--decode", "false", "--variants"]).Errors);
    }

    [Fact]
    public void Decode_refuses_a_csv_in_a_missing_directory_before_looking_for_a_gpu()
    {
        var run = CliRunner.Run("bench", "--decode", "--csv", Path.Combine(Path.GetTempPath(), "kdsl-no-such-folder", "decode.csv"));
        Assert.True(run.Code == 2, run.ToString());
        Assert.Contains("--csv", Assert.Single(run.ErrorLines));
    }

    [Fact]
    public void Cache_bytes_count_codes_and_statistics_of_every_page_the_batch_touches()
    {
        // Per page and KV head at D = 128: 64 × 128 K codes + 64 × 128 V codes + 1 K scale + 128 K means + 128 V scales (floats).
        Assert.Equal(2 * 64 * 128 + 4 + 2 * 4 * 128, DecodeBench.PageBytes(64, 128));
        Assert.Equal(64L * 8 * 17412, DecodeBench.CacheBytes(1, 4096));
        Assert.Equal(65L * 8 * 17412, DecodeBench.CacheBytes(1, 4097));
        Assert.Equal(16L * 512 * 8 * 17412, DecodeBench.CacheBytes(16, 32768));
    }

    [Fact]
    public void The_largest_grid_point_fits_an_80_GB_card()
    {
        // B = 64, context 32768: 4.6 GB of cache; with 132 splits of partials and the L2 flush buffer it fits an H100 with room to spare.
        var bytes = DecodeBench.DeviceBytes(DecodeBench.Batches.Max(), DecodeBench.Contexts.Max(), 132);
        Assert.InRange(bytes, DecodeBench.CacheBytes(64, 32768), 10_000_000_000L);
    }
}
