namespace KernelDsl.Runtime.Tests;

public sealed class ModuleCacheTests : IDisposable
{
    private static readonly NvrtcRequest Request = new("extern \"C\" __global__ void k() {}", "Tests.K", "sm_90", ["-DBLOCK_M=128"]);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "kerneldsl-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void A_memory_hit_does_not_call_the_compiler()
    {
        var compiler = new CountingCompiler();
        var cache = new ModuleCache(compiler, _directory);

        var first = cache.GetOrCompile(Request);
        var second = cache.GetOrCompile(Request);

        Assert.Equal(1, compiler.Calls);
        Assert.Same(first, second);
        Assert.Equal(compiler.CubinFor(Request), first.Cubin.ToArray());
        var stats = cache.Statistics;
        Assert.Equal((1, 1, 0), (stats.Compilations, stats.MemoryHits, stats.DiskHits));
        Assert.NotNull(stats.LastColdCompile);
        Assert.Null(stats.LastWarmLoad);
    }

    [Fact]
    public void A_disk_hit_in_a_new_cache_does_not_call_the_compiler()
    {
        new ModuleCache(new CountingCompiler(), _directory).GetOrCompile(Request);
        var compiler = new CountingCompiler();
        var cache = new ModuleCache(compiler, _directory);

        var image = cache.GetOrCompile(Request);

        Assert.Equal(0, compiler.Calls);
        Assert.Equal(compiler.CubinFor(Request), image.Cubin.ToArray());
        Assert.Equal(ModuleCache.KeyOf(Request, compiler.Version), image.Key);
        Assert.Equal("sm_90", image.Arch);
        Assert.Equal(1, cache.Statistics.DiskHits);
        Assert.NotNull(cache.Statistics.LastWarmLoad);
    }

    [Fact]
    public void The_key_changes_with_source_options_arch_and_compiler_version_and_nothing_else()
    {
        var version = new NvrtcVersion(13, 0);
        string[] keys =
        [
            ModuleCache.KeyOf(Request, version),
            ModuleCache.KeyOf(Request with { Source = Request.Source + " " }, version),
            ModuleCache.KeyOf(Request with { Options = ["-DBLOCK_M=64"] }, version),
            ModuleCache.KeyOf(Request with { Options = [] }, version),
            ModuleCache.KeyOf(Request with { LineInfo = true }, version),
            ModuleCache.KeyOf(Request with { Arch = "sm_80" }, version),
            ModuleCache.KeyOf(Request with { Arch = "sm_90a" }, version),
            ModuleCache.KeyOf(Request, new NvrtcVersion(13, 1)),
            ModuleCache.KeyOf(Request, new NvrtcVersion(12, 0)),
        ];

        Assert.Equal(keys.Length, keys.Distinct().Count());
        Assert.All(keys, key => Assert.Matches("^[0-9a-f]{64}$", key));
        Assert.Equal(keys[0], ModuleCache.KeyOf(Request with { VariantName = "Renamed", KeepPtx = true }, version));
    }

    [Theory]
    [InlineData("flip a payload byte")]
    [InlineData("truncate the payload")]
    [InlineData("truncate the header")]
    [InlineData("empty")]
    [InlineData("another key's entry")]
    [InlineData("future format")]
    public void A_damaged_entry_is_deleted_and_recompiled_never_trusted(string damage)
    {
        var seed = new ModuleCache(new CountingCompiler(), _directory);
        var image = seed.GetOrCompile(Request);
        var path = seed.EntryPath(image.Key)!;
        Damage(path, damage, seed);
        var compiler = new CountingCompiler();
        var cache = new ModuleCache(compiler, _directory);
        var warnings = new List<string>();
        cache.Warning += (_, message) => warnings.Add(message);

        var recompiled = cache.GetOrCompile(Request);

        Assert.Equal(1, compiler.Calls);
        Assert.Equal(image.Cubin.ToArray(), recompiled.Cubin.ToArray());
        Assert.Equal(1, cache.Statistics.RejectedEntries);
        Assert.Contains(warnings, warning => warning.Contains(path, StringComparison.Ordinal));
        var reader = new CountingCompiler();
        Assert.Equal(image.Cubin.ToArray(), new ModuleCache(reader, _directory).GetOrCompile(Request).Cubin.ToArray());
        Assert.Equal(0, reader.Calls);
    }

    [Fact]
    public void Writes_go_through_a_temporary_file_that_does_not_stay_behind()
    {
        var cache = new ModuleCache(new CountingCompiler(), _directory);

        foreach (var arch in new[] { "sm_80", "sm_86", "sm_89", "sm_90" })
        {
            cache.GetOrCompile(Request with { Arch = arch });
        }

        var files = Directory.GetFiles(_directory);
        Assert.Equal(4, files.Length);
        Assert.All(files, file => Assert.EndsWith(".cubin", file));
    }

    [Fact]
    public void Concurrent_first_requests_for_one_key_compile_once()
    {
        // The compilation is slow enough that every thread asks while it is still running.
        var compiler = new CountingCompiler { During = _ => Thread.Sleep(200) };
        var cache = new ModuleCache(compiler, _directory);
        var images = new ModuleImage[32];

        Parallel.For(0, images.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => images[i] = cache.GetOrCompile(Request));

        Assert.Equal(1, compiler.Calls);
        Assert.All(images, image => Assert.Same(images[0], image));
        Assert.Equal(images.Length - 1, cache.Statistics.MemoryHits);
    }

    [Fact]
    public void Two_caches_racing_on_one_directory_both_get_a_valid_entry()
    {
        // Both compile at the same moment (as two processes would), then both write and rename.
        using var bothCompiling = new Barrier(2);
        var compilers = new[]
        {
            new CountingCompiler { During = _ => bothCompiling.SignalAndWait(TimeSpan.FromSeconds(10)) },
            new CountingCompiler { During = _ => bothCompiling.SignalAndWait(TimeSpan.FromSeconds(10)) },
        };
        var caches = compilers.Select(compiler => new ModuleCache(compiler, _directory)).ToArray();

        var images = caches.AsParallel().WithDegreeOfParallelism(2).Select(cache => cache.GetOrCompile(Request)).ToArray();

        Assert.All(compilers, compiler => Assert.Equal(1, compiler.Calls));
        Assert.Equal(images[0].Cubin.ToArray(), images[1].Cubin.ToArray());
        Assert.Single(Directory.GetFiles(_directory));
        var reader = new CountingCompiler();
        var stored = new ModuleCache(reader, _directory).GetOrCompile(Request);
        Assert.Equal(0, reader.Calls);
        Assert.Equal(images[0].Cubin.ToArray(), stored.Cubin.ToArray());
    }

    [Fact]
    public void An_unwritable_directory_compiles_in_memory_and_warns()
    {
        // Root ignores permissions, so make the directory impossible instead: its parent is a regular file.
        Directory.CreateDirectory(_directory);
        var blocker = Path.Combine(_directory, "file");
        File.WriteAllText(blocker, "not a directory");
        var compiler = new CountingCompiler();
        var cache = new ModuleCache(compiler, Path.Combine(blocker, "sub"));
        var warnings = new List<string>();
        cache.Warning += (_, message) => warnings.Add(message);

        var first = cache.GetOrCompile(Request);
        var second = cache.GetOrCompile(Request);

        Assert.Equal(compiler.CubinFor(Request), first.Cubin.ToArray());
        Assert.Same(first, second);
        Assert.Equal(1, compiler.Calls);
        var warning = Assert.Single(warnings);
        Assert.Contains("in memory only", warning);
        Assert.Contains(blocker, warning);
        Assert.Equal(1, cache.Statistics.Warnings);
    }

    [Fact]
    public void A_memory_only_cache_never_touches_the_disk()
    {
        var compiler = new CountingCompiler();
        var cache = new ModuleCache(compiler, directory: null);

        cache.GetOrCompile(Request);
        cache.GetOrCompile(Request);

        Assert.Null(cache.Directory);
        Assert.Equal(1, compiler.Calls);
        Assert.Equal(0, cache.Statistics.Warnings);
    }

    [Fact]
    public void A_failed_compilation_is_not_cached()
    {
        var compiler = new CountingCompiler { During = call => { if (call == 1) throw new InvalidOperationException("first call fails"); } };
        var cache = new ModuleCache(compiler, _directory);

        Assert.Throws<InvalidOperationException>(() => cache.GetOrCompile(Request));
        var image = cache.GetOrCompile(Request);

        Assert.Equal(2, compiler.Calls);
        Assert.NotEmpty(image.Cubin.ToArray());
    }

    [Fact]
    public void The_default_directory_follows_the_override_then_xdg_then_home()
    {
        static Func<string, string?> Environment(params (string Name, string Value)[] variables) =>
            name => variables.FirstOrDefault(variable => variable.Name == name).Value;

        Assert.Equal("/ci/cache", ModuleCache.DefaultDirectory(Environment(("KERNELDSL_CACHE_DIR", "/ci/cache"), ("XDG_CACHE_HOME", "/xdg")), "/home/u"));
        Assert.Equal("/xdg/kerneldsl", ModuleCache.DefaultDirectory(Environment(("XDG_CACHE_HOME", "/xdg")), "/home/u"));
        Assert.Equal("/home/u/.cache/kerneldsl", ModuleCache.DefaultDirectory(Environment(("XDG_CACHE_HOME", "relative")), "/home/u"));
        Assert.Equal("/home/u/.cache/kerneldsl", ModuleCache.DefaultDirectory(Environment(), "/home/u"));
        Assert.Null(ModuleCache.DefaultDirectory(Environment(), ""));
    }

    private void Damage(string path, string damage, ModuleCache seed)
    {
        var bytes = File.ReadAllBytes(path);
        switch (damage)
        {
            case "flip a payload byte":
                bytes[^1] ^= 0x40;
                File.WriteAllBytes(path, bytes);
                break;
            case "truncate the payload":
                File.WriteAllBytes(path, bytes[..^5]);
                break;
            case "truncate the header":
                File.WriteAllBytes(path, bytes[..20]);
                break;
            case "empty":
                File.WriteAllBytes(path, []);
                break;
            case "another key's entry":
                var other = seed.GetOrCompile(Request with { Arch = "sm_80" });
                File.Copy(seed.EntryPath(other.Key)!, path, overwrite: true);
                break;
            case "future format":
                bytes[8] = 2;
                File.WriteAllBytes(path, bytes);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(damage), damage, null);
        }
    }
}
