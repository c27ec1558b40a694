using KernelDsl.Native;

namespace KernelDsl.Runtime.Tests;

public class NativeLibraryProbeTests
{
    [Fact]
    public void A_library_that_is_nowhere_gives_a_trace_naming_every_candidate_in_order()
    {
        string[] candidates = ["libkerneldsl-missing.so.13", "libkerneldsl-missing.so.12", "/nonexistent/libkerneldsl-missing.so"];

        var result = LibraryProbe.Load("test", candidates);

        Assert.False(result.Succeeded);
        Assert.Null(result.LoadedName);
        Assert.Contains("No test library could be loaded", result.Trace);
        var positions = candidates.Select(name => result.Trace.IndexOf($"'{name}': failed", StringComparison.Ordinal)).ToArray();
        Assert.All(positions, position => Assert.True(position >= 0, result.Trace));
        Assert.Equal(positions.Order(), positions);
    }

    [Fact]
    public void The_first_candidate_that_loads_wins_and_earlier_failures_stay_in_the_trace()
    {
        var result = LibraryProbe.Load("C", ["libkerneldsl-missing.so", "libc.so.6", "libm.so.6"]);

        Assert.True(result.Succeeded);
        Assert.Equal("libc.so.6", result.LoadedName);
        Assert.Contains("'libkerneldsl-missing.so': failed", result.Trace);
        Assert.Contains("'libc.so.6': loaded", result.Trace);
        Assert.DoesNotContain("libm.so.6", result.Trace);
    }

    [Fact]
    public void Nvrtc_is_probed_newest_first_after_an_explicit_path()
    {
        Assert.Equal(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"], NativeLibraries.NvrtcCandidates(null));
        Assert.Equal(["/opt/nvrtc/libnvrtc.so.13.0", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"],
            NativeLibraries.NvrtcCandidates("/opt/nvrtc/libnvrtc.so.13.0"));
        Assert.Equal(["libcuda.so.1", "libcuda.so"], NativeLibraries.CudaCandidates);
    }

    [Fact]
    public void An_explicit_nvrtc_brings_the_builtins_of_its_own_folder()
    {
        var folder = Directory.CreateTempSubdirectory("kdsl-nvrtc-").FullName;
        try
        {
            foreach (var name in new[] { "libnvrtc.so.12", "libnvrtc-builtins.so.12.4", "libnvrtc-builtins.so.12.4.127", "libnvrtc-builtins.so", "libnvrtc-builtins.so.11.8" })
            {
                File.WriteAllText(Path.Combine(folder, name), "");
            }
            // The names NVRTC opens (MAJOR.MINOR), not the full versions or the unversioned link.
            Assert.Equal([Path.Combine(folder, "libnvrtc-builtins.so.11.8"), Path.Combine(folder, "libnvrtc-builtins.so.12.4")],
                NativeLibraries.NvrtcBuiltinsBeside(Path.Combine(folder, "libnvrtc.so.12")));
            Assert.Empty(NativeLibraries.NvrtcBuiltinsBeside(null));
            // A bare name is searched for by the loader, not looked up in the working folder; a relative path is a folder.
            Assert.Empty(NativeLibraries.NvrtcBuiltinsBeside("libnvrtc.so.12"));
            var relative = Path.Combine(Path.GetRelativePath(Environment.CurrentDirectory, folder), "libnvrtc.so.12");
            Assert.Equal(2, NativeLibraries.NvrtcBuiltinsBeside(relative).Count);
            Assert.Empty(NativeLibraries.NvrtcBuiltinsBeside(Path.Combine(folder, "missing", "libnvrtc.so.12")));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
