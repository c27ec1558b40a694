using KernelDsl;
using KernelDsl.Cli;

namespace CliTests;

/// <summary>
/// <c>kdsl bench --gpus N</c> without a GPU: every argument error is one line naming the option, exit code 2, before
/// looking for a GPU; with good arguments and no GPU it says so, measures nothing, writes nothing, and exits 0.
/// </summary>
[Collection(CliCollection.Name)]
public class BenchGpusTests
{
    [Theory]
    [InlineData("--gpus", "must be from 2 to 64", "--gpus", "1")]
    [InlineData("--gpus", "must be from 2 to 64", "--gpus", "0")]
    [InlineData("--gpus", "must be from 2 to 64", "--gpus", "65")]
    [InlineData("--seq", "must be from 8 (two zig-zag chunks per GPU)", "--gpus", "4", "--seq", "7")]
    [InlineData("--seq", "to 1048576", "--gpus", "2", "--seq", "2000000")]
    [InlineData("--heads", "must be positive", "--gpus", "2", "--heads", "0")]
    [InlineData("--kv-heads", "positive divisor of --heads (32)", "--gpus", "2", "--kv-heads", "5")]
    [InlineData("--kv-heads", "positive divisor of --heads (6)", "--gpus", "2", "--heads", "6", "--kv-heads", "4")]
    [InlineData("--head-dim", "64 or 128", "--gpus", "2", "--head-dim", "96")]
    [InlineData("--decode", "--gpus and --decode cannot be used together", "--gpus", "2", "--decode")]
    [InlineData("--variants", "--gpus and --variants cannot be used together", "--gpus", "2", "--variants")]
    [InlineData("--quick", "--gpus and --quick cannot be used together", "--gpus", "2", "--quick")]
    [InlineData("--only", "--gpus and --only cannot be used together", "--gpus", "2", "--only", "Wgmma")]
    [InlineData("--heads", "--heads applies to --gpus only", "--heads", "16")]
    [InlineData("--kv-heads", "--kv-heads applies to --gpus only", "--kv-heads", "4")]
    [InlineData("--gpus", "Cannot parse argument 'two'", "--gpus", "two")]
    [InlineData("--seq", "positive divisor of 16384", "--seq", "5000")]
    public void A_bad_argument_is_one_line_naming_it_with_exit_code_2(string option, string rule, params string[] args)
    {
        var run = CliRunner.Run(["bench", .. args]);
        Assert.True(run.Code == 2, run.ToString());
        var line = Assert.Single(run.ErrorLines);
        Assert.Contains(option, line);
        Assert.Contains(rule, line);
        Assert.DoesNotContain("Exception", run.All);
        Assert.DoesNotContain("   at ", run.All);
    }

    [Fact]
    public void Good_arguments_parse()
    {
        Assert.Empty(CliApp.Build().Parse(["bench", "--gpus", "2"]).Errors);
        Assert.Empty(CliApp.Build().Parse(["bench", "--gpus", "8", "--seq", "131072", "--heads", "16", "--kv-heads", "4", "--head-dim", "64", "--csv", "cp.csv"]).Errors);
        Assert.Empty(CliApp.Build().Parse(["bench", "--gpus", "3", "--seq", "6", "--heads", "5", "--kv-heads", "1"]).Errors);
        Assert.Empty(CliApp.Build().Parse(["bench", "--seq", "4096"]).Errors);
    }

    [Fact]
    public void A_csv_in_a_missing_directory_is_refused_before_looking_for_a_gpu()
    {
        var run = CliRunner.Run("bench", "--gpus", "2", "--csv", Path.Combine(Path.GetTempPath(), "kdsl-no-such-folder", "cp.csv"));
        Assert.True(run.Code == 2, run.ToString());
        Assert.Contains("--csv", Assert.Single(run.ErrorLines));
    }

    [Fact]
    public void Without_a_gpu_it_says_so_measures_nothing_and_exits_cleanly()
    {
        if (CudaDevice.TryOpen(0, out var device, out _))
        {
            device.Dispose();
            Assert.Skip("A GPU is present, so kdsl bench --gpus measures; this checks the message of a machine without one.");
        }
        var csv = Path.Combine(Directory.CreateTempSubdirectory("kdsl-gpus-").FullName, "cp.csv");
        var run = CliRunner.Run("bench", "--gpus", "4", "--seq", "4096", "--csv", csv);
        Assert.True(run.Code == 0, run.ToString());
        Assert.Empty(run.ErrorLines);
        Assert.Contains("No CUDA GPU here", run.Output);
        Assert.Contains("kdsl bench --gpus 4 measured nothing", run.Output);
        Assert.Contains("no scaling number", run.Output);
        Assert.DoesNotContain("   at ", run.All);
        Assert.False(File.Exists(csv), "nothing is written");
    }
}
