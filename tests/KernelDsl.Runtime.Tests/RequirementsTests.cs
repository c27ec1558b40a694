using KernelDsl.Testing;

namespace KernelDsl.Runtime.Tests;

/// <summary>
/// The test requirements (tests/Shared/Requirements.cs): tests a machine cannot run are reported as one skipped entry per
/// class and reason, whose reason is one line that says what to install or set.
/// </summary>
public class RequirementsTests
{
    [Fact]
    public void Unmet_cases_group_by_class_and_reason_in_first_seen_order()
    {
        const string Gpu = "needs a GPU", Nvrtc = "needs NVRTC 12";
        var groups = RequirementsTestFramework.Group(
        [
            ("A", "Theory", Gpu), ("B", "Fact", Nvrtc), ("A", "Theory", Gpu), ("A", "Other", Gpu),
            ("C", "Theory", Nvrtc), ("C", "Theory", Nvrtc), ("B", "Fact", Gpu),
        ]);

        (string, string, int[])[] expected =
        [
            ("A: 3 tests not run", Gpu, new[] { 0, 2, 3 }),
            ("B.Fact: not run", Nvrtc, new[] { 1 }),
            ("C.Theory: 2 cases not run", Nvrtc, new[] { 4, 5 }),
            ("B.Fact: not run", Gpu, new[] { 6 }),
        ];
        Assert.Equal(expected, groups.Select(g => (g.Name, g.Reason, g.Members)), new GroupComparer());
    }

    [Fact]
    public void A_missing_driver_is_one_line_that_says_what_to_install_and_how_to_fail_instead()
    {
        var trace = $"the NVIDIA driver (libcuda.so.1) is not installed{Environment.NewLine}No CUDA driver library could be loaded (tried libcuda.so.1).{Environment.NewLine}" +
                    $"  trying 'libcuda.so.1': failed: libcuda.so.1: cannot open shared object file{Environment.NewLine}";

        var reason = RequiresCudaDeviceAttribute.SkipReason(trace);

        Assert.DoesNotContain('\n', reason);
        Assert.Contains("NVIDIA driver (libcuda.so.1) is not installed", reason);
        Assert.Contains("docs/GPU.md", reason);
        Assert.Contains("KERNELDSL_REQUIRE_GPU=1", reason);
        // Another failure keeps the driver's own first line.
        Assert.Contains("CUDA_ERROR_NO_DEVICE", RequiresCudaDeviceAttribute.SkipReason($"Counting CUDA devices failed: CUDA_ERROR_NO_DEVICE.{Environment.NewLine}more"));
    }

    private sealed class GroupComparer : IEqualityComparer<(string, string, int[])>
    {
        public bool Equals((string, string, int[]) x, (string, string, int[]) y) => x.Item1 == y.Item1 && x.Item2 == y.Item2 && x.Item3.SequenceEqual(y.Item3);

        public int GetHashCode((string, string, int[]) obj) => obj.Item1.GetHashCode(StringComparison.Ordinal);
    }
}
