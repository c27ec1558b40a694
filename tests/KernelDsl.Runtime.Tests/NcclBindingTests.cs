using System.Diagnostics;
using System.Runtime.CompilerServices;
using KernelDsl.Native;

namespace KernelDsl.Runtime.Tests;

/// <summary>The NCCL binding without NCCL or a GPU: how it is found, what it says when it is not, and every check made before a call reaches it.</summary>
public class NcclBindingTests
{
    [Fact]
    public void Nccl_is_probed_after_an_explicit_path_like_nvrtc()
    {
        Assert.Equal(["libnccl.so.2", "libnccl.so"], NativeLibraries.NcclCandidates(null));
        Assert.Equal(["/opt/nccl/lib/libnccl.so.2.21.5", "libnccl.so.2", "libnccl.so"], NativeLibraries.NcclCandidates("/opt/nccl/lib/libnccl.so.2.21.5"));
        Assert.Equal("KERNELDSL_NCCL_PATH", Nccl.PathVariable);
    }

    [Fact]
    public void Pips_nccl_wheel_is_found_in_site_packages_after_the_systems_without_running_python()
    {
        var root = Directory.CreateTempSubdirectory("kdsl-wheel-").FullName;
        try
        {
            string Wheel(string prefix, string python, string packages)
            {
                var file = Path.Combine(root, prefix, "lib", python, packages, NativeLibraries.NcclWheelFile);
                Directory.CreateDirectory(Path.GetDirectoryName(file)!);
                File.WriteAllText(file, "");
                return file;
            }
            var (venv, user) = (Wheel("venv", "python3.12", "site-packages"), Wheel("user", "python3.9", "site-packages"));
            var newer = Wheel("usr", "python3.10", "dist-packages");
            var older = Wheel("usr", "python3.8", "dist-packages");
            Directory.CreateDirectory(Path.Combine(root, "empty", "lib", "python3.11", "site-packages"));
            string[] prefixes = [Path.Combine(root, "venv"), Path.Combine(root, "empty"), Path.Combine(root, "user"), Path.Combine(root, "usr"), Path.Combine(root, "none")];
            Assert.Equal(["libnccl.so.2", "libnccl.so", venv, user, newer, older], NativeLibraries.NcclCandidates(null, prefixes));
            Assert.Equal(["/x/libnccl.so.2", "libnccl.so.2", "libnccl.so", venv, user, newer, older], NativeLibraries.NcclCandidates("/x/libnccl.so.2", prefixes));
            Assert.Contains("/usr/local", NativeLibraries.PythonPrefixes());
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void The_fix_names_the_export_for_pytorchs_nccl_without_the_runtime_starting_python()
    {
        var (_, reason) = Nccl.Decide(LibraryProbe.Load("NCCL", ["/nonexistent/libnccl.so.2"]), () => 0);
        Assert.Contains($"export KERNELDSL_NCCL_PATH={Nccl.WheelPathCommand}", reason.Split('\n')[0]);
        Assert.Contains("nvidia-nccl-cu12", reason.Split('\n')[0]);
        Assert.EndsWith("/lib/libnccl.so.2", Nccl.WheelPathCommand);
    }

    [Fact]
    public void A_missing_library_says_what_to_install_or_set_then_every_file_tried()
    {
        var probe = LibraryProbe.Load("NCCL", ["/nonexistent/libnccl.so.2"]);
        var (version, reason) = Nccl.Decide(probe, () => throw new InvalidOperationException("no version without a library"));
        Assert.Null(version);
        var first = reason.Split('\n')[0];
        Assert.StartsWith("NCCL is not available: No NCCL library could be loaded (tried /nonexistent/libnccl.so.2).", first);
        Assert.Contains("libnccl2", first);
        Assert.Contains("KERNELDSL_NCCL_PATH", first);
        Assert.Contains("'/nonexistent/libnccl.so.2': failed", reason);
    }

    [Fact]
    public void A_library_older_than_2_14_is_refused_by_its_version()
    {
        var loaded = new LibraryProbeResult(1, "libnccl.so.2", "Loaded NCCL library 'libnccl.so.2'.");
        var (old, reason) = Nccl.Decide(loaded, () => 21304);
        Assert.Null(old);
        Assert.StartsWith("NCCL 2.13.4 ('libnccl.so.2') is older than 2.14.0", reason);
        Assert.Equal(new NcclVersion(2, 21, 5), Nccl.Decide(loaded, () => 22105).Version);
    }

    [Fact]
    public void Without_nccl_the_first_call_throws_the_reason_not_an_entry_point_error()
    {
        if (Nccl.TryLoad(out var version, out _))
        {
            Assert.Skip($"NCCL {version} is installed here; this checks the message of a machine without it.");
        }
        var error = Assert.Throws<DllNotFoundException>(NcclCommunicator.CreateUniqueId);
        Assert.StartsWith("NCCL is not available", error.Message);
        Assert.Contains("KERNELDSL_NCCL_PATH", error.Message);
    }

    [Theory]
    [InlineData(22105, 2, 21, 5)]
    [InlineData(21400, 2, 14, 0)]
    [InlineData(20900, 2, 9, 0)]
    [InlineData(2804, 2, 8, 4)]   // before 2.9: major·1000 + minor·100 + patch
    public void Version_codes_decode_in_both_schemes(int code, int major, int minor, int patch)
    {
        var version = NcclVersion.FromCode(code);
        Assert.Equal(new NcclVersion(major, minor, patch), version);
        Assert.Equal(code, version.Code);
        Assert.True(new NcclVersion(2, 8, 4) < NcclVersion.Minimum && NcclVersion.Minimum <= new NcclVersion(2, 14, 0));
    }

    [Fact]
    public void The_config_is_the_2_14_prefix_of_ncclConfig_t_asking_for_a_nonblocking_communicator()
    {
        // size_t size; unsigned magic; unsigned version; int blocking: 20 bytes, padded to 24 by the size_t's alignment.
        Assert.Equal(24, Unsafe.SizeOf<NcclConfig>());
        var config = NcclConfig.Nonblocking;
        Assert.Equal((nuint)24, config.Size);
        Assert.Equal(0xcafebeefu, config.Magic);
        Assert.Equal(21400u, config.Version);
        Assert.Equal(0, config.Blocking);
        Assert.Equal(128, Unsafe.SizeOf<NcclUniqueIdBytes>());
    }

    [Fact]
    public void Results_map_to_nccls_names_and_the_message_names_operation_rank_and_detail()
    {
        var error = new NcclException(NcclResult.RemoteError, "Waiting for transfers (rank 1 of 4, device 1)", "The communicator was aborted.");
        Assert.Equal(NcclResult.RemoteError, error.Result);
        Assert.StartsWith("Waiting for transfers (rank 1 of 4, device 1) failed: ncclRemoteError (6)", error.Message);
        Assert.EndsWith("The communicator was aborted.", error.Message);
        Assert.Equal("ncclInvalidArgument", NcclException.NameOf(NcclResult.InvalidArgument));
        Assert.Equal("ncclTimeout", NcclException.NameOf(NcclResult.Timeout));
        Assert.Equal("ncclResult 42", NcclException.NameOf((NcclResult)42));
    }

    [Fact]
    public void Unique_ids_are_128_bytes_that_travel_as_base64_text()
    {
        var bytes = Enumerable.Range(0, 128).Select(i => (byte)(i * 7)).ToArray();
        var id = NcclUniqueId.FromBytes(bytes);
        Assert.Equal(bytes, id.ToArray());
        Assert.Equal(id, NcclUniqueId.Parse(id.ToString()));
        Assert.NotEqual(id, NcclUniqueId.FromBytes(new byte[128]));
        Assert.Equal("bytes", Assert.Throws<ArgumentException>(() => NcclUniqueId.FromBytes(new byte[127])).ParamName);
        Assert.Equal("text", Assert.Throws<ArgumentException>(() => NcclUniqueId.Parse("not base 64!")).ParamName);
        Assert.Equal("text", Assert.Throws<ArgumentException>(() => NcclUniqueId.Parse(Convert.ToBase64String(new byte[64]))).ParamName);
    }

    [Fact]
    public void Joining_checks_ranks_rank_timeout_and_device_before_loading_nccl()
    {
        var id = NcclUniqueId.FromBytes(new byte[128]);
        Assert.Equal("ranks", Assert.Throws<ArgumentException>(() => NcclCommunicator.InitRank(null!, id, 0, 0)).ParamName);
        Assert.Equal("rank", Assert.Throws<ArgumentOutOfRangeException>(() => NcclCommunicator.InitRank(null!, id, 4, 4)).ParamName);
        Assert.Equal("rank", Assert.Throws<ArgumentOutOfRangeException>(() => NcclCommunicator.InitRank(null!, id, 4, -1)).ParamName);
        Assert.Equal("timeout", Assert.Throws<ArgumentOutOfRangeException>(() => NcclCommunicator.InitRank(null!, id, 4, 1, TimeSpan.Zero)).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentNullException>(() => NcclCommunicator.InitRank(null!, id, 4, 1)).ParamName);
        Assert.Equal("devices", Assert.Throws<ArgumentException>(() => NcclCommunicator.InitAll([])).ParamName);
        Assert.Equal("devices", Assert.Throws<ArgumentException>(() => NcclCommunicator.InitAll([null!])).ParamName);
        Assert.Equal("devices", Assert.Throws<ArgumentException>(() => NcclCommunicator.InitRanks([])).ParamName);
        Assert.Equal("devices", Assert.Throws<ArgumentException>(() => NcclCommunicator.InitRanks([null!])).ParamName);
        Assert.Equal("members", Assert.Throws<ArgumentException>(() => NcclCommunicator.Group([], () => { })).ParamName);
    }

    [Fact]
    public void Transfers_check_ranges_peers_and_block_counts()
    {
        NcclArguments.Span(100, 0, 100, "source");
        NcclArguments.Span(100, 100, 0, "source");
        Assert.Equal("source", Assert.Throws<ArgumentException>(() => NcclArguments.Span(100, 1, 100, "source")).ParamName);
        Assert.Equal("source", Assert.Throws<ArgumentException>(() => NcclArguments.Span(100, -1, 10, "source")).ParamName);
        Assert.Equal("source", Assert.Throws<ArgumentException>(() => NcclArguments.Span(100, 0, -1, "source")).ParamName);
        Assert.Equal("source", Assert.Throws<ArgumentException>(() => NcclArguments.Span(100, long.MaxValue, 10, "source")).ParamName);
        NcclArguments.Rank(3, 4, "peer");
        Assert.Equal("peer", Assert.Throws<ArgumentOutOfRangeException>(() => NcclArguments.Rank(4, 4, "peer")).ParamName);
        NcclArguments.Blocks(100, 25, 4, "destination");
        var blocks = Assert.Throws<ArgumentException>(() => NcclArguments.Blocks(99, 25, 4, "destination"));
        Assert.Equal("destination", blocks.ParamName);
        Assert.Contains("4 ranks × 25 need 100", blocks.Message);
        Assert.Equal("count", Assert.Throws<ArgumentOutOfRangeException>(() => NcclArguments.Blocks(100, -1, 4, "destination")).ParamName);
        Assert.Equal("devices", Assert.Throws<ArgumentException>(() => NcclArguments.Devices([0, 1, 0], "devices")).ParamName);
        Assert.Equal(Timeout.InfiniteTimeSpan, NcclArguments.Timeout(Timeout.InfiniteTimeSpan));
        Assert.Equal(NcclCommunicator.DefaultTimeout, NcclArguments.Timeout(null));
    }

    [Fact]
    public void Polling_gives_up_at_the_timeout_and_returns_as_soon_as_done()
    {
        var clock = Stopwatch.StartNew();
        Assert.False(NcclPolling.Until(() => false, TimeSpan.FromMilliseconds(50)));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(5));
        var calls = 0;
        Assert.True(NcclPolling.Until(() => ++calls == 3, TimeSpan.FromSeconds(5)));
        Assert.Equal(3, calls);
        Assert.True(NcclPolling.Until(() => true, Timeout.InfiniteTimeSpan));
    }
}
